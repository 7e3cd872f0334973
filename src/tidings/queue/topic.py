"""A topic: its log, a window of recent messages in memory, and its channels.

Publishing appends to the log (the OS has the bytes when `append` returns),
then waits for durability (the fsync policy, and the replica when there is
one) before the publisher is answered. Only then does the message become
`committed`, i.e. visible to channels: a consumer never sees a message that
a crash could take back.

Every channel reads the same log from its own position. A topic without
channels keeps what is published (`orphan_start`) for the first channel to
come, as nsqd does. Log segments are deleted once every channel is past
them (`retention_floor`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from tidings.queue.channel import Channel
from tidings.queue.log import MessageLog
from tidings.queue.message import StoredMessage, encode_payload

_META = "topic.json"
#: Bodies of recent messages kept in memory for the channels (beyond: read from the log).
CACHE_BYTES = 32 << 20
_READ_COUNT = 4096
_CHANNEL_PREFIX = "c-"


class TopicMeta(msgspec.Struct):
    paused: bool = False
    orphan_start: int = 0
    # On a replica: each channel's position on the primary, where it resumes after failover.
    peer_floors: dict[str, int] = {}


class Topic:
    """One topic of the queue node."""

    def __init__(
        self,
        name: str,
        log: MessageLog,
        directory: Path | None,
        *,
        ephemeral: bool = False,
        cache_size: int = 10_000,
    ) -> None:
        self.name = name
        self.log = log
        self.directory = directory
        self.ephemeral = ephemeral
        self.channels: dict[str, Channel] = {}
        self.meta = TopicMeta(orphan_start=log.first_seq)
        if directory is not None and (directory / _META).exists():
            self.meta = msgspec.json.decode((directory / _META).read_bytes(), type=TopicMeta)
        self._committed = log.next_seq  # what is on disk at start counts as published
        self._cache: list[StoredMessage] = []
        self._cache_start = log.next_seq
        self._cache_size = cache_size
        self._cache_bytes = 0
        self.message_count = 0
        self.message_bytes = 0
        self.deleted = False
        self._paused_at = self._committed

    # -- persistence of settings ---------------------------------------------

    def save_meta(self) -> None:
        if self.directory is None:
            return
        temp = self.directory / (_META + ".tmp")
        temp.write_bytes(msgspec.json.encode(self.meta))
        temp.replace(self.directory / _META)

    def channel_directory(self, channel: str) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / "channels" / (_CHANNEL_PREFIX + channel)

    def stored_channel_names(self) -> list[str]:
        if self.directory is None or not (self.directory / "channels").is_dir():
            return []
        return sorted(
            path.name[len(_CHANNEL_PREFIX) :]
            for path in (self.directory / "channels").iterdir()
            if path.name.startswith(_CHANNEL_PREFIX)
        )

    @property
    def paused(self) -> bool:
        return self.meta.paused

    def pause(self, paused: bool) -> None:
        if paused and not self.meta.paused:
            self._paused_at = self._committed
        self.meta.paused = paused
        self.save_meta()
        if not paused:
            self.notify()

    # -- publishing ----------------------------------------------------------

    @property
    def committed(self) -> int:
        """Messages below this number are durable and visible to channels."""
        return self._paused_at if self.meta.paused else self._committed

    def append(self, bodies: Sequence[bytes], deliver_at_ms: int = 0) -> tuple[int, int]:
        """Write messages to the log; return (last seq, bytes). Raises `LogWriteError`."""
        now = time.time_ns()
        payloads = [encode_payload(now, deliver_at_ms, body) for body in bodies]
        before = self.log.size_bytes
        last = self.log.append(payloads)
        first = last - len(payloads) + 1
        if first != self._cache_start + len(self._cache):
            self._cache = []
            self._cache_bytes = 0
            self._cache_start = first
        self._cache.extend(
            StoredMessage(first + i, now, deliver_at_ms, body) for i, body in enumerate(bodies)
        )
        self._cache_bytes += sum(len(body) for body in bodies)
        self._trim_cache()
        self.message_count += len(bodies)
        self.message_bytes += sum(len(b) for b in bodies)
        return last, self.log.size_bytes - before

    def append_replicated(self, first_seq: int, payloads: Sequence[bytes]) -> tuple[int, int]:
        """Write records copied from a primary at their own numbers; return (next, bytes)."""
        before = self.log.size_bytes
        next_seq = self.log.append_at(first_seq, payloads)
        self._cache = []
        self._cache_bytes = 0
        self._cache_start = next_seq
        self.message_count += len(payloads)
        return next_seq, self.log.size_bytes - before

    def _trim_cache(self) -> None:
        """Keep at most `cache_size` messages and `CACHE_BYTES` of bodies (trimmed in steps)."""
        cache = self._cache
        if len(cache) <= self._cache_size + self._cache_size // 4 and (
            self._cache_bytes <= CACHE_BYTES
        ):
            return
        excess = max(len(cache) - self._cache_size, 0)
        freed = sum(len(m.body) for m in cache[:excess])
        while self._cache_bytes - freed > CACHE_BYTES // 2 and excess < len(cache):
            freed += len(cache[excess].body)
            excess += 1
        del cache[:excess]
        self._cache_start += excess
        self._cache_bytes -= freed

    def commit(self, end: int) -> None:
        """Messages below `end` are durable: let the channels have them."""
        if end > self._committed:
            self._committed = end
            if self.meta.paused:
                return
            self.notify()

    def notify(self) -> None:
        if self.meta.paused:
            return
        for channel in self.channels.values():
            channel.wake()

    def read(self, seq: int, max_bytes: int) -> list[StoredMessage]:
        end = self.committed
        if seq >= end:
            return []
        start = self._cache_start
        if start <= seq < start + len(self._cache):
            total = 0
            out: list[StoredMessage] = []
            for message in self._cache[seq - start : min(end, seq + _READ_COUNT) - start]:
                out.append(message)
                total += len(message.body)
                if total >= max_bytes:
                    break
            return out
        return [
            StoredMessage.decode(record_seq, payload)
            for record_seq, payload in self.log.read(seq, max_bytes)
            if record_seq < end
        ]

    # -- channels ------------------------------------------------------------

    def start_of_new_channel(self, name: str) -> int:
        if name in self.meta.peer_floors:
            return max(self.meta.peer_floors[name], self.log.first_seq)
        if self.channels:
            return self._committed
        return max(self.meta.orphan_start, self.log.first_seq)

    def add_channel(self, channel: Channel) -> None:
        self.channels[channel.name] = channel
        if self.meta.peer_floors.pop(channel.name, None) is not None:
            self.save_meta()

    def remove_channel(self, name: str, delete: bool) -> Channel | None:
        channel = self.channels.pop(name, None)
        if channel is not None:
            channel.close(delete)
            if not self.channels:
                self.meta.orphan_start = self._committed
                self.save_meta()
        return channel

    @property
    def depth(self) -> int:
        """Messages kept for a channel to come (nsqd's topic depth)."""
        if self.channels:
            return 0
        return max(self._committed - max(self.meta.orphan_start, self.log.first_seq), 0)

    def empty(self) -> None:
        self.meta.orphan_start = self._committed
        self.save_meta()

    def retention_floor(self) -> int:
        if not self.channels:
            floors = [self.meta.orphan_start, *self.meta.peer_floors.values()]
            return max(min(floors), self.log.first_seq)
        floors = [channel.retention_floor() for channel in self.channels.values()]
        return min(floors + list(self.meta.peer_floors.values()))

    def each_channel(self, action: Callable[[Channel], None]) -> None:
        for channel in list(self.channels.values()):
            action(channel)

    def close(self, delete: bool) -> None:
        for name in list(self.channels):
            channel = self.channels.pop(name)
            channel.close(delete)
        if delete:
            self.deleted = True
            self.log.destroy()
            if self.directory is not None:
                for path in sorted(self.directory.rglob("*"), reverse=True):
                    with contextlib.suppress(OSError):
                        path.unlink() if path.is_file() else path.rmdir()
                with contextlib.suppress(OSError):
                    self.directory.rmdir()
        else:
            self.save_meta()
            self.log.close()
