"""The topic log: an append-only sequence of numbered records.

`MessageLog` is the interface; `FileLog` keeps records in segment files on
disk, `MemoryLog` in memory (ephemeral topics, tests). Both pass the same
conformance suite (tests/queue/test_log.py).

Record on disk: `[u32 payload length][u32 crc32 of seq+payload][u64 seq][payload]`.
Segments are named after their first sequence number and rolled at
`segment_bytes`. On open, the last segment is scanned and a torn tail (a
record cut by a crash, or with a bad checksum) is cut off. Sequence numbers
grow by one per record; a replica may jump forward (`append_at`) when the
primary has already deleted older segments.

Durability: `append` hands the bytes to the OS (`os.write`), which survives a
crash of the process (kill -9) but not of the machine; `sync_job()` returns a
job that fsyncs what was written, to be run in a worker thread.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import struct
import zlib
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

_HEADER = struct.Struct(">IIQ")
_SEQ = struct.Struct(">Q")
_INDEX_EVERY = 1024
_READ_CHUNK = 256 * 1024
_SUFFIX = ".seg"


class LogWriteError(Exception):
    """An append failed (disk full, I/O error); nothing of it is kept."""


class MessageLog(ABC):
    """Numbered records, appended at the end, deleted from the front."""

    @property
    @abstractmethod
    def first_seq(self) -> int:
        """The oldest sequence number still held (== next_seq when empty)."""

    @property
    @abstractmethod
    def next_seq(self) -> int:
        """The number the next appended record gets."""

    @property
    @abstractmethod
    def size_bytes(self) -> int:
        """Bytes held (on disk for `FileLog`)."""

    @abstractmethod
    def append(self, payloads: Sequence[bytes]) -> int:
        """Append records; return the sequence number of the last one."""

    @abstractmethod
    def append_at(self, seq: int, payloads: Sequence[bytes]) -> int:
        """Append records numbered from `seq` (skips those already held); return next_seq."""

    @abstractmethod
    def read(self, seq: int, max_bytes: int = _READ_CHUNK) -> list[tuple[int, bytes]]:
        """Records numbered `seq` or later, at least one if any, about `max_bytes` in all."""

    @abstractmethod
    def truncate_before(self, seq: int) -> int:
        """Delete what is wholly below `seq` (whole segments); return bytes freed."""

    def sync_job(self) -> Callable[[], None] | None:
        """A job making appended records durable (run it in a thread), or None."""
        return None

    def close(self) -> None:
        """Release files (nothing to release by default)."""
        return None

    def destroy(self) -> None:
        """Close and delete everything."""
        self.close()


class MemoryLog(MessageLog):
    """A log in memory, for ephemeral topics."""

    def __init__(self, start: int = 0) -> None:
        self._records: deque[bytes] = deque()
        self._first = start
        self._size = 0

    @property
    def first_seq(self) -> int:
        return self._first

    @property
    def next_seq(self) -> int:
        return self._first + len(self._records)

    @property
    def size_bytes(self) -> int:
        return self._size

    def append(self, payloads: Sequence[bytes]) -> int:
        self._records.extend(payloads)
        self._size += sum(len(p) for p in payloads)
        return self.next_seq - 1

    def append_at(self, seq: int, payloads: Sequence[bytes]) -> int:
        if seq > self.next_seq:
            self._records.clear()
            self._size = 0
            self._first = seq
        skip = self.next_seq - seq
        if skip < len(payloads):
            self.append(payloads[skip:])
        return self.next_seq

    def read(self, seq: int, max_bytes: int = _READ_CHUNK) -> list[tuple[int, bytes]]:
        seq = max(seq, self._first)
        out: list[tuple[int, bytes]] = []
        total = 0
        index = seq - self._first
        records = self._records
        while index < len(records) and (not out or total < max_bytes):
            payload = records[index]
            out.append((self._first + index, payload))
            total += len(payload)
            index += 1
        return out

    def truncate_before(self, seq: int) -> int:
        freed = 0
        while self._records and self._first < seq:
            freed += len(self._records.popleft())
            self._first += 1
        self._size -= freed
        return freed


class _Segment:
    __slots__ = ("fd", "first_seq", "index_offsets", "index_seqs", "next_seq", "path", "size")

    def __init__(self, path: Path, first_seq: int, fd: int) -> None:
        self.path = path
        self.first_seq = first_seq
        self.next_seq = first_seq
        self.fd = fd
        self.size = 0
        self.index_seqs: list[int] = []
        self.index_offsets: list[int] = []

    def note(self, seq: int, offset: int) -> None:
        if (seq - self.first_seq) % _INDEX_EVERY == 0:
            self.index_seqs.append(seq)
            self.index_offsets.append(offset)

    def offset_near(self, seq: int) -> tuple[int, int]:
        """(seq, offset) of an indexed record at or before `seq`."""
        i = bisect.bisect_right(self.index_seqs, seq) - 1
        if i < 0:
            return self.first_seq, 0
        return self.index_seqs[i], self.index_offsets[i]


def _scan(fd: int, segment: _Segment) -> None:
    """Walk a segment's records: index them, find its end, cut a torn tail."""
    offset = 0
    size = os.fstat(fd).st_size
    expected = segment.first_seq
    while offset + _HEADER.size <= size:
        header = os.pread(fd, _HEADER.size, offset)
        length, crc, seq = _HEADER.unpack(header)
        end = offset + _HEADER.size + length
        if end > size or (expected not in (segment.first_seq, seq)):
            break
        payload = os.pread(fd, length, offset + _HEADER.size)
        if zlib.crc32(payload, zlib.crc32(header[8:])) != crc:
            break
        segment.note(seq, offset)
        expected = seq + 1
        offset = end
    if offset != size:
        os.ftruncate(fd, offset)
    segment.size = offset
    segment.next_seq = expected


def encode_records(first_seq: int, payloads: Sequence[bytes]) -> bytes:
    parts: list[bytes] = []
    seq = first_seq
    for payload in payloads:
        seq_bytes = _SEQ.pack(seq)
        crc = zlib.crc32(payload, zlib.crc32(seq_bytes))
        parts.append(struct.pack(">II", len(payload), crc) + seq_bytes)
        parts.append(payload)
        seq += 1
    return b"".join(parts)


class FileLog(MessageLog):
    """Segment files under `directory`."""

    def __init__(self, directory: Path, segment_bytes: int = 64 << 20) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._segments: list[_Segment] = []
        self._dirty: set[int] = set()
        self._dir_dirty = False
        self._size = 0
        for path in sorted(directory.glob("*" + _SUFFIX)):
            try:
                first = int(path.stem)
            except ValueError:
                continue
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            segment = _Segment(path, first, fd)
            _scan(fd, segment)
            self._segments.append(segment)
            self._size += segment.size
        if not self._segments:
            self._new_segment(0)

    @property
    def first_seq(self) -> int:
        return self._segments[0].first_seq

    @property
    def next_seq(self) -> int:
        return self._segments[-1].next_seq

    @property
    def size_bytes(self) -> int:
        return self._size

    def _new_segment(self, first_seq: int) -> _Segment:
        path = self.directory / f"{first_seq:020d}{_SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        segment = _Segment(path, first_seq, fd)
        self._segments.append(segment)
        self._dir_dirty = True
        return segment

    def append(self, payloads: Sequence[bytes]) -> int:
        self._write(self.next_seq, payloads)
        return self.next_seq - 1

    def append_at(self, seq: int, payloads: Sequence[bytes]) -> int:
        current = self.next_seq
        if seq > current:
            last = self._segments[-1]
            if last.size == 0:
                self._drop(last)
            self._new_segment(seq)
            current = seq
        skip = current - seq
        if skip < len(payloads):
            self._write(current, payloads[skip:])
        return self.next_seq

    def _drop(self, segment: _Segment) -> None:
        self._segments.remove(segment)
        self._dirty.discard(segment.fd)
        os.close(segment.fd)
        segment.path.unlink(missing_ok=True)
        self._size -= segment.size

    def _write(self, first_seq: int, payloads: Sequence[bytes]) -> None:
        segment = self._segments[-1]
        if segment.size >= self.segment_bytes:
            segment = self._new_segment(first_seq)
        data = encode_records(first_seq, payloads)
        start = segment.size
        try:
            view = memoryview(data)
            while view:
                written = os.pwrite(segment.fd, view, start + len(data) - len(view))
                view = view[written:]
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, start)
            raise LogWriteError(str(exc)) from exc
        offset = start
        seq = first_seq
        for payload in payloads:
            segment.note(seq, offset)
            offset += _HEADER.size + len(payload)
            seq += 1
        segment.size = offset
        segment.next_seq = seq
        self._size += len(data)
        self._dirty.add(segment.fd)

    def _segment_for(self, seq: int) -> int:
        firsts = [s.first_seq for s in self._segments]
        return max(bisect.bisect_right(firsts, seq) - 1, 0)

    def read(self, seq: int, max_bytes: int = _READ_CHUNK) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        i = self._segment_for(seq)
        total = 0
        while i < len(self._segments) and (not out or total < max_bytes):
            segment = self._segments[i]
            seq = max(seq, segment.first_seq)
            if seq < segment.next_seq:
                total += self._read_segment(segment, seq, max_bytes - total, out)
                if out:
                    seq = out[-1][0] + 1
            i += 1
        return out

    def _read_segment(
        self, segment: _Segment, seq: int, budget: int, out: list[tuple[int, bytes]]
    ) -> int:
        at_seq, offset = segment.offset_near(seq)
        fd = segment.fd
        total = 0
        chunk = b""
        chunk_start = offset
        while offset < segment.size:
            rel = offset - chunk_start
            if rel + _HEADER.size > len(chunk):
                chunk_start = offset
                chunk = os.pread(fd, max(_READ_CHUNK, _HEADER.size), offset)
                rel = 0
            length, _crc, record_seq = _HEADER.unpack_from(chunk, rel)
            end = rel + _HEADER.size + length
            if end > len(chunk):
                chunk_start = offset
                chunk = os.pread(fd, max(_READ_CHUNK, _HEADER.size + length), offset)
                rel = 0
                end = _HEADER.size + length
            if record_seq >= seq:
                out.append((record_seq, bytes(chunk[rel + _HEADER.size : end])))
                total += length
                if total >= budget:
                    break
            offset = chunk_start + end
            at_seq = record_seq + 1
        del at_seq
        return total

    def truncate_before(self, seq: int) -> int:
        freed = 0
        while len(self._segments) > 1 and self._segments[1].first_seq <= seq:
            segment = self._segments[0]
            freed += segment.size
            self._drop(segment)
        last = self._segments[-1]
        if len(self._segments) == 1 and last.next_seq <= seq and last.size > 0:
            freed += last.size
            self._drop(last)
            self._new_segment(last.next_seq)
        return freed

    def sync_job(self) -> Callable[[], None] | None:
        if not self._dirty and not self._dir_dirty:
            return None
        # Duplicated descriptors: the job may run while the loop closes a segment.
        fds = [os.dup(fd) for fd in self._dirty]
        dir_fd = os.open(self.directory, os.O_RDONLY) if self._dir_dirty else -1
        self._dirty.clear()
        self._dir_dirty = False

        def job() -> None:
            for fd in fds:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if dir_fd >= 0:
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)

        return job

    def close(self) -> None:
        for segment in self._segments:
            with contextlib.suppress(OSError):
                os.close(segment.fd)
        self._dirty.clear()

    def destroy(self) -> None:
        self.close()
        for segment in self._segments:
            segment.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.directory.rmdir()
        self._segments = []
