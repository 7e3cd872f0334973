"""Replication: a primary copies its topic logs to a replica before answering PUB.

The replica listens on its own port (`--replication-address`); the primary
connects to it (`--replica host:port`). Frames are `[u32 size][u8 kind][body]`
(size counts the kind byte):

    H  primary -> replica  hello; the replica answers S
    S  replica -> primary  JSON {topic: next_seq} of what it holds
    A  primary -> replica  [u8 n][topic][u64 first_seq][u32 count]([u32 len][record])*
    K  replica -> primary  [u8 n][topic][u64 next_seq]: durable there up to next_seq
    X  primary -> replica  [u8 n][topic]: the topic was deleted
    P  primary -> replica  JSON {topic: {"floor": n, "channels": {name: n}}}

Records keep their sequence numbers, so message ids are the same on both
nodes. The primary streams from its log files (catch-up after a reconnect
and live traffic are the same loop). A publish is answered once the replica
acknowledged it; while the replica is unreachable, publishes fail with
E_PUB_FAILED (the messages stay in the primary's log and are copied when the
replica is back). P frames tell the replica where each channel of the
primary stands, so it deletes what every channel finished and, after a
failover, a channel resumes on the replica from its primary position
(messages finished after the last P frame come again: at least once).

While a primary is connected, the replica refuses publishes from its own
clients, so the copies cannot diverge; if they did anyway (clients published
to the replica while the primary was away), the primary does not overwrite
the replica's records: publishes to that topic fail until an operator
resolves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque
from typing import Any

import msgspec

from tidings.queue.node import PublishError, QueueNode
from tidings.queue.tcp import split_address

log = logging.getLogger(__name__)

_FRAME = struct.Struct(">IB")
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_MAX_FRAME = 64 << 20
_BATCH_BYTES = 1 << 20
#: Seconds without a frame after which a replica considers its primary gone.
PRIMARY_SILENCE = 10.0


def frame(kind: bytes, body: bytes) -> bytes:
    return _FRAME.pack(len(body) + 1, kind[0]) + body


def _name(name: str) -> bytes:
    raw = name.encode()
    return bytes([len(raw)]) + raw


def _read_name(body: bytes, offset: int) -> tuple[str, int]:
    size = body[offset]
    return body[offset + 1 : offset + 1 + size].decode(), offset + 1 + size


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    header = await reader.readexactly(_FRAME.size)
    size, kind = _FRAME.unpack(header)
    if not 1 <= size <= _MAX_FRAME:
        raise ConnectionError(f"bad replication frame size {size}")
    return bytes([kind]), await reader.readexactly(size - 1)


def encode_append(topic: str, records: list[tuple[int, bytes]]) -> bytes:
    parts = [_name(topic), _U64.pack(records[0][0]), _U32.pack(len(records))]
    for _, payload in records:
        parts.append(_U32.pack(len(payload)))
        parts.append(payload)
    return frame(b"A", b"".join(parts))


def decode_append(body: bytes) -> tuple[str, int, list[bytes]]:
    topic, offset = _read_name(body, 0)
    (first,) = _U64.unpack_from(body, offset)
    (count,) = _U32.unpack_from(body, offset + 8)
    offset += 12
    payloads: list[bytes] = []
    for _ in range(count):
        (size,) = _U32.unpack_from(body, offset)
        offset += 4
        payloads.append(body[offset : offset + size])
        offset += size
    return topic, first, payloads


class ReplicaLink:
    """The primary's connection to its replica."""

    def __init__(self, node: QueueNode, address: str, timeout: float) -> None:
        self.node = node
        self.address = address
        self.timeout = timeout
        self.connected = False
        self._sent: dict[str, int] = {}
        self._acked: dict[str, int] = {}
        self._waiters: dict[str, deque[tuple[int, asyncio.Future[None]]]] = {}
        self._wake = asyncio.Event()
        self._deleted: list[str] = []
        self._diverged: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    # -- what the node calls -------------------------------------------------

    def appended(self, topic: str) -> None:
        self._wake.set()

    def topic_deleted(self, topic: str) -> None:
        self._diverged.discard(topic)
        self._deleted.append(topic)
        self._sent.pop(topic, None)
        self._acked.pop(topic, None)
        self._wake.set()

    async def wait(self, topic: str, seq: int) -> None:
        """Return once the replica holds `seq` of `topic`; raise `PublishError` if it cannot."""
        if self._acked.get(topic, 0) > seq:
            return
        if topic in self._diverged:
            raise PublishError(f"replica {self.address} holds a different copy of {topic}")
        if not self.connected:
            raise PublishError(f"replica {self.address} unavailable")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(topic, deque()).append((seq, future))
        try:
            await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise PublishError(f"replica {self.address} did not acknowledge in time") from None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        host, port = split_address(self.address, 4152)
        while True:
            writer: asyncio.StreamWriter | None = None
            try:
                reader, writer = await asyncio.open_connection(host, port)
                await self._session(reader, writer)
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
                if self.connected:
                    log.warning("replica %s lost: %s", self.address, exc)
            finally:
                self._down()
                if writer is not None:
                    writer.close()
            await asyncio.sleep(0.2)

    def _down(self) -> None:
        self.connected = False
        for waiters in self._waiters.values():
            while waiters:
                _, future = waiters.popleft()
                if not future.done():
                    future.set_exception(PublishError(f"replica {self.address} unavailable"))

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(b"H", b""))
        kind, body = await read_frame(reader)
        if kind != b"S":
            raise ConnectionError("replica did not answer hello")
        held: dict[str, int] = msgspec.json.decode(body)
        self._sent.clear()
        self._acked.clear()
        for name, topic in self.node.topics.items():
            if topic.ephemeral:
                continue
            there = held.get(name, 0)
            if there > topic.log.next_seq:
                # The replica has records this node never wrote (published there while
                # this node was away, or an older topic of the same name): refuse to
                # overwrite them; publishes to the topic fail until an operator decides.
                log.error("replica %s holds more of %s than this node: not copied", name, name)
                self._diverged.add(name)
                continue
            self._sent[name] = max(there, topic.log.first_seq)
            self._acked[name] = there
        self.connected = True
        log.info("replica %s connected", self.address)
        acks = asyncio.create_task(self._receive(reader))
        try:
            await self._send(writer, acks)
        finally:
            acks.cancel()

    async def _send(self, writer: asyncio.StreamWriter, acks: asyncio.Task[None]) -> None:
        # Positions also serve as the link's heartbeat (see PRIMARY_SILENCE).
        progress_every = min(self.node.settings.checkpoint_interval, PRIMARY_SILENCE / 5)
        loop = asyncio.get_running_loop()
        next_progress = loop.time()
        while not acks.done():
            while self._deleted:
                writer.write(frame(b"X", _name(self._deleted.pop())))
            sent_any = False
            for name, topic in list(self.node.topics.items()):
                if topic.ephemeral or name in self._diverged:
                    continue
                start = self._sent.get(name, topic.log.first_seq)
                if start >= topic.log.next_seq:
                    continue
                records = topic.log.read(start, _BATCH_BYTES)
                if records:
                    writer.write(encode_append(name, records))
                    self._sent[name] = records[-1][0] + 1
                    sent_any = True
            if loop.time() >= next_progress:
                writer.write(frame(b"P", msgspec.json.encode(self._floors())))
                next_progress = loop.time() + progress_every
            await writer.drain()
            if not sent_any:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), progress_every)
        acks.result()

    def _floors(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, topic in self.node.topics.items():
            if topic.ephemeral:
                continue
            out[name] = {
                "floor": topic.retention_floor(),
                "channels": {
                    channel.name: channel.retention_floor()
                    for channel in topic.channels.values()
                    if not channel.ephemeral
                },
            }
        return out

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        while True:
            kind, body = await read_frame(reader)
            if kind != b"K":
                raise ConnectionError(f"unexpected replication frame {kind!r}")
            name, offset = _read_name(body, 0)
            (next_seq,) = _U64.unpack_from(body, offset)
            self._acked[name] = max(self._acked.get(name, 0), next_seq)
            waiters = self._waiters.get(name)
            while waiters and waiters[0][0] < next_seq:
                _, future = waiters.popleft()
                if not future.done():
                    future.set_result(None)


class ReplicationListener:
    """The replica's side: applies what the primary streams, acknowledges it."""

    def __init__(self, node: QueueNode, address: str) -> None:
        self.node = node
        self.address = address
        self.server: asyncio.Server | None = None
        self.port = 0
        self._sessions: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        host, port = split_address(self.address, 4152)
        self.server = await asyncio.start_server(self._serve, host, port)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._sessions):
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        self.node.primaries += 1  # clients may not publish here meanwhile
        try:
            while True:
                # The primary sends positions at least every checkpoint interval: a
                # silent link means a dead primary (or network), and clients may publish.
                kind, body = await asyncio.wait_for(read_frame(reader), PRIMARY_SILENCE)
                await self._apply(kind, body, writer)
        except TimeoutError:
            log.warning("primary silent for %.0f s: dropping the link", PRIMARY_SILENCE)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            log.info("primary disconnected: %s", exc)
        except Exception:  # e.g. a log write that failed: drop the link, the primary retries
            log.exception("replication from the primary failed")
        finally:
            self.node.primaries -= 1
            if task is not None:
                self._sessions.discard(task)
            writer.close()

    async def _apply(self, kind: bytes, body: bytes, writer: asyncio.StreamWriter) -> None:
        node = self.node
        if kind == b"H":
            held = {n: t.log.next_seq for n, t in node.topics.items() if not t.ephemeral}
            writer.write(frame(b"S", msgspec.json.encode(held)))
        elif kind == b"A":
            name, first, payloads = decode_append(body)
            topic = node.topic(name, announce=False)
            next_seq, added = topic.append_replicated(first, payloads)
            node.disk_bytes += added
            await node.committer.commit(topic.log)
            topic.commit(next_seq)
            writer.write(frame(b"K", _name(name) + _U64.pack(next_seq)))
        elif kind == b"X":
            name, _ = _read_name(body, 0)
            node.delete_topic(name)
        elif kind == b"P":
            self._apply_floors(msgspec.json.decode(body))
        else:
            raise ConnectionError(f"unexpected replication frame {kind!r}")
        await writer.drain()

    def _apply_floors(self, floors: dict[str, Any]) -> None:
        for name, entry in floors.items():
            topic = self.node.topics.get(name)
            if topic is None or topic.channels:
                continue  # channels here mean this node serves consumers itself now
            topic.meta.orphan_start = int(entry["floor"])
            topic.meta.peer_floors = {str(k): int(v) for k, v in entry["channels"].items()}
            topic.save_meta()
