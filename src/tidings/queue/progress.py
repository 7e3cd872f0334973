"""What a channel has finished, durably: a checkpoint plus a journal.

A channel's position in its topic log is a *floor* (where reading resumes)
plus every unfinished record below it (`deferred`: seq -> due, wall-clock ms,
0 for "at once"), the records finished above the floor since the last
checkpoint (`acked`) and the delivery count of each unfinished record
(`attempts`).

Between checkpoints every change is appended to a journal file with
`os.write` as it happens (FIN, delivery, REQ with delay), so a crash of the
process (kill -9) loses none of it; a power cut loses what was written since
the last fsync, which follows the fsync policy at each checkpoint. At a
checkpoint the whole state is written to a new file (temp + rename) and the
journal starts a new generation; loading replays every journal at or after
the checkpoint's generation, so a crash at any point of the checkpoint is safe.

An ephemeral channel gets a `ChannelProgress(None, ...)`: same API, no files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import msgspec

log = logging.getLogger(__name__)

_FIN = 0x46  # F
_ATTEMPT = 0x41  # A
_DEFER = 0x44  # D
_SHORT = struct.Struct(">BQ")
_LONG = struct.Struct(">BQq")
_CHECKPOINT = "checkpoint.json"


class Checkpoint(msgspec.Struct):
    generation: int = 0
    floor: int = 0
    acked: list[tuple[int, int]] = []
    attempts: list[tuple[int, int]] = []
    deferred: list[tuple[int, int]] = []
    paused: bool = False
    max_attempts: int = 0


def _ranges(values: set[int]) -> list[tuple[int, int]]:
    """Sorted (first, last) ranges covering `values`."""
    out: list[tuple[int, int]] = []
    for value in sorted(values):
        if out and out[-1][1] == value - 1:
            out[-1] = (out[-1][0], value)
        else:
            out.append((value, value))
    return out


class ChannelProgress:
    """The durable consumption state of one channel."""

    def __init__(
        self, directory: Path | None, start: int, fsync: bool = False, max_attempts: int = 0
    ) -> None:
        self.directory = directory
        self.fsync = fsync
        self.floor = start
        self.acked: set[int] = set()
        self.attempts: dict[int, int] = {}
        self.deferred: dict[int, int] = {}
        self.paused = False
        self.max_attempts = max_attempts
        self._generation = 0
        self._journal_fd = -1
        self._pending = bytearray()
        self._changed = True
        self._saved: tuple[int, bool, int] = (-1, False, 0)
        self._written = -1
        self._lock = threading.Lock()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._load(directory)

    # -- changes -----------------------------------------------------------

    def finished(self, seq: int) -> None:
        self._changed = True
        self.acked.add(seq)
        self.attempts.pop(seq, None)
        self.deferred.pop(seq, None)
        self._pending += _SHORT.pack(_FIN, seq)

    def delivered(self, seq: int, attempts: int) -> None:
        self._changed = True
        self.attempts[seq] = attempts
        self._pending += _SHORT.pack(_ATTEMPT, seq)

    def deferred_until(self, seq: int, due_ms: int, journal: bool = True) -> None:
        """Deferral of a record; `journal=False` when the record itself says it (DPUB)."""
        self._changed = True
        self.deferred[seq] = due_ms
        if journal:
            self._pending += _LONG.pack(_DEFER, seq, due_ms)

    def undeferred(self, seq: int) -> None:
        """The record is due: it is now in the channel's queue (the floor keeps it)."""
        self._changed = True
        self.deferred.pop(seq, None)

    def flush(self) -> None:
        """Hand the journal entries to the OS (call once per batch of commands)."""
        if not self._pending:
            return
        if self._journal_fd >= 0:
            data = bytes(self._pending)
            written = 0
            try:
                while written < len(data):
                    written += os.write(self._journal_fd, data[written:])
            except OSError as exc:
                # Kept for the next try; the next checkpoint holds it all anyway.
                del self._pending[:written]
                log.warning("channel journal write failed: %s", exc)
                return
        self._pending.clear()

    # -- checkpoints ---------------------------------------------------------

    def checkpoint(self, floor: int, outstanding: dict[int, int] | None = None) -> None:
        """Write the whole state now (and start a new journal generation)."""
        job = self.checkpoint_job(floor, outstanding)
        if job is not None:
            job()

    def checkpoint_job(
        self, floor: int, outstanding: dict[int, int] | None = None
    ) -> Callable[[], None] | None:
        """Snapshot the state now; the job writes it (may run in a thread). None if unchanged.

        `floor` is where reading resumes; `outstanding` lists every unfinished record
        below it (seq -> due ms, 0 for "deliver at once": in flight, queued again,
        deferred). So the state stays as small as what is outstanding, however long
        one message stays in flight.
        """
        self.flush()
        self._pending.clear()  # whatever the journal could not take is in this snapshot
        self.floor = floor
        if outstanding is not None:
            self.deferred = dict(outstanding)
        self.acked = {seq for seq in self.acked if seq >= floor}
        self.attempts = {
            seq: n for seq, n in self.attempts.items() if seq >= floor or seq in self.deferred
        }
        settings = (floor, self.paused, self.max_attempts)
        if self.directory is None or (not self._changed and settings == self._saved):
            return None
        self._changed = False
        self._saved = settings
        directory = self.directory
        generation = self._generation + 1
        self._open_journal(directory, generation)
        data = msgspec.json.encode(
            Checkpoint(
                generation,
                floor,
                _ranges(self.acked),
                sorted(self.attempts.items()),
                sorted(self.deferred.items()),
                self.paused,
                self.max_attempts,
            )
        )
        return lambda: self._write(directory, generation, data)

    def _write(self, directory: Path, generation: int, data: bytes) -> None:
        with self._lock:
            if generation <= self._written:
                return  # a newer checkpoint is already there
            temp = directory / f"{_CHECKPOINT}.{generation}.tmp"
            with temp.open("wb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            temp.replace(directory / _CHECKPOINT)
            if self.fsync:  # the rename itself must survive a power cut
                dir_fd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            self._written = generation
            for old in directory.glob("journal.*"):
                with contextlib.suppress(ValueError, OSError):
                    if int(old.suffix[1:]) < generation:
                        old.unlink()

    def sync(self) -> None:
        """fsync the journal (power-cut durability of FINs since the checkpoint)."""
        self.flush()
        if self._journal_fd >= 0:
            os.fsync(self._journal_fd)

    def close(self) -> None:
        self.flush()
        if self._journal_fd >= 0:
            os.close(self._journal_fd)
            self._journal_fd = -1

    def destroy(self) -> None:
        self.close()
        if self.directory is None:
            return
        with self._lock:
            self._written = 1 << 62  # checkpoint jobs still queued write nothing
            for path in self.directory.iterdir():
                path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.directory.rmdir()

    # -- loading -------------------------------------------------------------

    def _open_journal(self, directory: Path, generation: int) -> None:
        if self._journal_fd >= 0:
            os.close(self._journal_fd)
        path = directory / f"journal.{generation}"
        self._journal_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._generation = generation

    def _load(self, directory: Path) -> None:
        path = directory / _CHECKPOINT
        if path.exists():
            state = msgspec.json.decode(path.read_bytes(), type=Checkpoint)
            self.floor = state.floor
            for first, last in state.acked:
                self.acked.update(range(first, last + 1))
            self.attempts = dict(state.attempts)
            self.deferred = dict(state.deferred)
            self.paused = state.paused
            self.max_attempts = state.max_attempts
            self._generation = state.generation
            self._written = state.generation
        journals: list[tuple[int, Path]] = []
        for journal in directory.glob("journal.*"):
            with contextlib.suppress(ValueError):
                generation = int(journal.suffix[1:])
                if generation >= self._generation:
                    journals.append((generation, journal))
        for _, journal in sorted(journals):
            self._replay(journal.read_bytes())
        self.checkpoint(self.floor, self.deferred)

    def _replay(self, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            kind = data[offset]
            if kind == _DEFER:
                if offset + _LONG.size > len(data):
                    break  # a torn last entry
                _, seq, due = _LONG.unpack_from(data, offset)
                offset += _LONG.size
                if seq not in self.acked:
                    self.deferred[seq] = due
                continue
            if offset + _SHORT.size > len(data) or kind not in (_FIN, _ATTEMPT):
                break
            _, seq = _SHORT.unpack_from(data, offset)
            offset += _SHORT.size
            if kind == _FIN:
                self.acked.add(seq)
                self.attempts.pop(seq, None)
                self.deferred.pop(seq, None)
            else:
                self.attempts[seq] = self.attempts.get(seq, 0) + 1
