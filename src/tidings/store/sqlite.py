"""History streams in SQLite: the embedded durable store.

One writer thread owns the database connection; the event loop hands it
operations through a queue and awaits futures. Writes are group-committed:
every append queued while a commit runs goes into the next transaction, and
with the `batch` policy the thread lingers `batch_window` seconds to gather
more. A publish is acknowledged only after its transaction commits:

- `always`: commit right away, fsync (synchronous=FULL) every commit;
- `batch`:  wait up to `batch_window` for company, then commit with fsync;
- `never`:  commit without fsync (the OS decides when data reaches the disk).

Policies can differ per namespace; a transaction holding any `always` or
`batch` append is fsynced. Each write runs in its own savepoint inside the
shared transaction: a write that fails (a constraint, a value SQLite cannot
hold, a full disk) is rolled back alone and fails only its caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from tidings.fsync import check_fsync_policy
from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import (
    Ack,
    HistoryStore,
    OutOfRange,
    Position,
    StoreWriteError,
    UnrecoverablePosition,
    check_offset,
    check_read,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    channel TEXT PRIMARY KEY,
    epoch   TEXT NOT NULL,
    top     INTEGER NOT NULL,
    ttl     REAL NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pubs (
    channel TEXT NOT NULL,
    offset  INTEGER NOT NULL,
    time    REAL NOT NULL,
    ikey    TEXT,
    data    BLOB NOT NULL,
    PRIMARY KEY (channel, offset)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS pubs_ikey ON pubs (channel, ikey) WHERE ikey IS NOT NULL;
CREATE TABLE IF NOT EXISTS acks (
    user    TEXT NOT NULL,
    channel TEXT NOT NULL,
    offset  INTEGER NOT NULL,
    epoch   TEXT NOT NULL,
    time    REAL NOT NULL,
    client  TEXT NOT NULL,
    PRIMARY KEY (user, channel)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""

#: Stream tops remembered on the loop side (most recently appended kept).
MAX_CACHED_TOPS = 100_000


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Publication)


@dataclass
class _Op:
    kind: str
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    policy: str = "never"
    result: Any = None
    error: BaseException | None = None
    writes: bool = field(default=False)


class SqliteHistoryStore(HistoryStore):
    """Durable history streams, acks and idempotency keys in one SQLite file."""

    durable = True

    def __init__(
        self,
        path: Path,
        *,
        policy_of: Callable[[str], str] | None = None,
        default_policy: str = "batch",
        batch_window: float = 0.002,
        max_bytes: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_fsync_policy(default_policy)
        self.path = path
        self.default_policy = default_policy
        self._batch_window = batch_window
        self._max_bytes = max_bytes
        self._clock = clock
        self._policy_of = policy_of
        # Loop-side cache of tops, updated on commit; oldest entries first.
        self._tops: dict[str, Position] = {}
        self._ops: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._worker: _Worker | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="sqlite-store", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise StoreWriteError(f"cannot open {path}: {self._open_error}")

    @property
    def commits(self) -> int:
        """Write transactions committed so far (group commit: fewer than appends)."""
        return self._worker.commits if self._worker is not None else 0

    def _policy(self, channel: str) -> str:
        return self._policy_of(channel) if self._policy_of is not None else self.default_policy

    # --- loop side --------------------------------------------------------------------

    async def _call(
        self, kind: str, *args: Any, policy: str = "never", writes: bool = False
    ) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._ops.put(_Op(kind, args, future, loop, policy, writes=writes))
        return await future

    async def append(
        self,
        channel: str,
        pub: Publication,
        size: int,
        ttl: float,
        idempotency_key: str = "",
    ) -> Position:
        check_offset("size", size)
        position: Position = await self._call(
            "append",
            channel,
            pub,
            size,
            ttl,
            idempotency_key,
            policy=self._policy(channel),
            writes=True,
        )
        tops = self._tops
        current = tops.pop(channel, None)
        if current is None or current.epoch != position.epoch or current.offset < position.offset:
            current = position
        tops[channel] = current  # re-inserted: the most recently appended go last
        if len(tops) > MAX_CACHED_TOPS:
            del tops[next(iter(tops))]
        return position

    async def read(
        self,
        channel: str,
        since: Position | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> tuple[list[Publication], Position]:
        check_read(since, limit)
        pubs, top = await self._call("read", channel, since, limit, reverse)
        return pubs, top

    async def position(self, channel: str) -> Position:
        # Not cached in `_tops`: only appends move a top, and they record it there.
        # Every connection looks at its personal channel's position, so caching
        # it here cost an entry per user ever connected.
        top: Position = await self._call("position", channel)
        return top

    async def remove(self, channel: str) -> None:
        await self._call("remove", channel, writes=True, policy=self._policy(channel))

    def top(self, channel: str) -> Position | None:
        return self._tops.get(channel)

    async def find(self, channel: str, idempotency_key: str) -> int:
        offset: int = await self._call("find", channel, idempotency_key)
        return offset

    async def ack(self, user: str, channel: str, position: Position, client: str) -> Ack:
        check_offset("offset", position.offset)
        ack: Ack = await self._call(
            "ack", user, channel, position, client, writes=True, policy=self._policy(channel)
        )
        return ack

    async def acked(self, user: str, channel: str) -> Ack | None:
        ack: Ack | None = await self._call("acked", user, channel)
        return ack

    async def acks(self, channel: str, offset: int, limit: int = 100) -> list[tuple[str, Ack]]:
        check_offset("offset", offset)
        check_offset("limit", limit)
        found: list[tuple[str, Ack]] = await self._call("acks", channel, offset, limit)
        return found

    async def num_streams(self) -> int:
        count: int = await self._call("num_streams")
        return count

    async def sweep(self) -> None:
        await self._call("sweep", writes=True)

    async def close(self) -> None:
        if self._thread.is_alive():
            self._ops.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    # --- writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            if self._max_bytes:
                page_size = db.execute("PRAGMA page_size").fetchone()[0]
                db.execute(f"PRAGMA max_page_count={max(16, self._max_bytes // page_size)}")
            worker = self._worker = _Worker(db, self._clock)
        except (sqlite3.Error, ValueError) as exc:
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                op = self._ops.get()
                if op is None:
                    return
                batch = [op]
                if op.writes and op.policy == "batch":
                    deadline = time.monotonic() + self._batch_window
                    while (left := deadline - time.monotonic()) > 0:
                        try:
                            nxt = self._ops.get(timeout=left)
                        except queue.Empty:
                            break
                        if nxt is None:
                            self._ops.put(None)
                            break
                        batch.append(nxt)
                with contextlib.suppress(queue.Empty):
                    while len(batch) < 10_000:
                        nxt = self._ops.get_nowait()
                        if nxt is None:
                            self._ops.put(None)
                            break
                        batch.append(nxt)
                worker.run(batch)
                for item in batch:
                    item.loop.call_soon_threadsafe(_settle, item)
        finally:
            db.close()


def _settle(op: _Op) -> None:
    if op.future.done():
        return
    if op.error is not None:
        op.future.set_exception(op.error)
    else:
        op.future.set_result(op.result)


class _Worker:
    """Runs a batch of operations on the thread's connection."""

    def __init__(self, db: sqlite3.Connection, clock: Callable[[], float]) -> None:
        self.db = db
        self.clock = clock
        self.streams: dict[str, list[Any]] = {}  # channel -> [epoch, top, ttl]
        self.commits = 0
        # The epoch of a channel without a stream row derives from this file's secret:
        # stable for every reader, kept by the first append, and no row per look.
        db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch_secret', ?)",
            (secrets.token_hex(16),),
        )
        row = db.execute("SELECT value FROM meta WHERE key = 'epoch_secret'").fetchone()
        self.secret = bytes.fromhex(str(row[0]))

    def run(self, batch: list[_Op]) -> None:
        writes = [op for op in batch if op.writes]
        for op in batch:
            if not op.writes:
                self._read_op(op)
        if not writes:
            return
        durable = any(op.policy != "never" for op in writes)
        self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        try:
            self.db.execute("BEGIN IMMEDIATE")
            for op in writes:
                self._write_op(op)
            self.db.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            self.streams.clear()  # cached tops may include rolled-back appends
            error = StoreWriteError(f"durable store write failed: {exc}")
            for op in writes:
                if op.error is None:
                    op.error, op.result = error, None

    def _read_op(self, op: _Op) -> None:
        try:
            op.result = getattr(self, f"_{op.kind}")(*op.args)
        except (UnrecoverablePosition, OutOfRange) as exc:
            op.error = exc
        except sqlite3.Error as exc:
            op.error = StoreWriteError(f"durable store read failed: {exc}")
        except Exception as exc:
            # A corrupt row (DecodeError) or a bug fails this operation only: escaping,
            # it would end the writer thread and leave every later call hanging.
            op.error = StoreWriteError(f"durable store read failed: {type(exc).__name__}: {exc}")

    def _write_op(self, op: _Op) -> None:
        """Run one write in its own savepoint: failing, it is undone alone.

        When the transaction itself is lost, the error escapes and `run` fails
        the whole batch.
        """
        self.db.execute("SAVEPOINT op")
        try:
            op.result = getattr(self, f"_{op.kind}")(*op.args)
        except Exception as exc:
            if not self.db.in_transaction:
                # SQLite rolled the whole transaction back itself (a full disk, an I/O
                # error): every write of the batch is gone, so the batch fails.
                if isinstance(exc, sqlite3.Error):
                    raise
                raise sqlite3.DatabaseError(f"{type(exc).__name__}: {exc}") from exc
            self.db.execute("ROLLBACK TO op")
            if op.kind == "append":
                self.streams.pop(op.args[0], None)  # its cached top may be rolled back
            if isinstance(exc, UnrecoverablePosition | OutOfRange | StoreWriteError):
                op.error = exc
            else:
                kind = "" if isinstance(exc, sqlite3.Error) else f"{type(exc).__name__}: "
                op.error = StoreWriteError(f"durable store write failed: {kind}{exc}")
        self.db.execute("RELEASE op")

    def _stream(self, channel: str, create: bool = False) -> list[Any]:
        """[epoch, top, ttl] of `channel`; cached only if it exists or is being created."""
        stream = self.streams.get(channel)
        if stream is None:
            row = self.db.execute(
                "SELECT epoch, top, ttl FROM streams WHERE channel = ?", (channel,)
            ).fetchone()
            if row is None:
                stream = [self._epoch(channel), 0, 0.0]
                if not create:
                    return stream  # a look at a channel never published costs nothing
            else:
                stream = list(row)
            if len(self.streams) > 100_000:
                self.streams.clear()
            self.streams[channel] = stream
        return stream

    def _epoch(self, channel: str) -> str:
        name = channel.encode(errors="surrogatepass")
        return hashlib.blake2b(name, key=self.secret, digest_size=4).hexdigest()

    def _append(self, channel: str, pub: Publication, size: int, ttl: float, ikey: str) -> Position:
        stream = self._stream(channel, create=True)
        if ikey:
            row = self.db.execute(
                "SELECT offset FROM pubs WHERE channel = ? AND ikey = ?", (channel, ikey)
            ).fetchone()
            if row:
                return Position(row[0], stream[0])
        offset = stream[1] + 1
        pub.offset = offset
        now = self.clock()
        self.db.execute(
            "INSERT INTO pubs (channel, offset, time, ikey, data) VALUES (?, ?, ?, ?, ?)",
            (channel, offset, now, ikey or None, _encoder.encode(pub)),
        )
        self.db.execute(
            "INSERT INTO streams (channel, epoch, top, ttl) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (channel) DO UPDATE SET top = excluded.top, ttl = excluded.ttl",
            (channel, stream[0], offset, ttl),
        )
        stream[1], stream[2] = offset, ttl
        self.db.execute(
            "DELETE FROM pubs WHERE channel = ? AND offset <= ?", (channel, offset - size)
        )
        if ttl > 0:
            self.db.execute(
                "DELETE FROM pubs WHERE channel = ? AND offset < ? AND time <= ?",
                (channel, offset, now - ttl),
            )
        return Position(offset, stream[0])

    def _read(
        self, channel: str, since: Position | None, limit: int, reverse: bool
    ) -> tuple[list[Publication], Position]:
        epoch, top, ttl = self._stream(channel)
        position = Position(top, epoch)
        cutoff = self.clock() - ttl if ttl > 0 else float("-inf")
        after = 0
        if since is not None:
            if since.epoch and since.epoch != epoch:
                raise UnrecoverablePosition(f"epoch {since.epoch!r} is not {epoch!r}")
            if since.offset > top:
                raise UnrecoverablePosition(f"offset {since.offset} is beyond {top}")
            after = since.offset
            if after < top:
                row = self.db.execute(
                    "SELECT min(offset) FROM pubs WHERE channel = ? AND time > ?",
                    (channel, cutoff),
                ).fetchone()
                first = row[0] if row and row[0] is not None else top + 1
                if after + 1 < first:
                    raise UnrecoverablePosition(f"publications after {after} were trimmed")
        if limit == 0:
            return [], position
        order = "DESC" if reverse else "ASC"
        rows = self.db.execute(
            f"SELECT data FROM pubs WHERE channel = ? AND offset > ? AND time > ? "
            f"ORDER BY offset {order} LIMIT ?",
            (channel, after, cutoff, limit if limit > 0 else -1),
        ).fetchall()
        return [_decoder.decode(row[0]) for row in rows], position

    def _position(self, channel: str) -> Position:
        epoch, top, _ = self._stream(channel)
        return Position(top, epoch)

    def _remove(self, channel: str) -> None:
        self.db.execute("DELETE FROM pubs WHERE channel = ?", (channel,))

    def _find(self, channel: str, ikey: str) -> int:
        row = self.db.execute(
            "SELECT offset FROM pubs WHERE channel = ? AND ikey = ?", (channel, ikey)
        ).fetchone()
        return int(row[0]) if row else 0

    def _ack(self, user: str, channel: str, position: Position, client: str) -> Ack:
        current = self._acked(user, channel)
        if (
            current is not None
            and current.epoch == position.epoch
            and (current.offset >= position.offset)
        ):
            return current
        ack = Ack(position.offset, position.epoch, time.time(), client)
        self.db.execute(
            "INSERT INTO acks (user, channel, offset, epoch, time, client) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (user, channel) DO UPDATE SET offset = excluded.offset, "
            "epoch = excluded.epoch, time = excluded.time, client = excluded.client",
            (user, channel, ack.offset, ack.epoch, ack.time, ack.client),
        )
        return ack

    def _acked(self, user: str, channel: str) -> Ack | None:
        row = self.db.execute(
            "SELECT offset, epoch, time, client FROM acks WHERE user = ? AND channel = ?",
            (user, channel),
        ).fetchone()
        return Ack(int(row[0]), str(row[1]), float(row[2]), str(row[3])) if row else None

    def _acks(self, channel: str, offset: int, limit: int) -> list[tuple[str, Ack]]:
        epoch = self._stream(channel)[0]
        rows = self.db.execute(
            "SELECT user, offset, epoch, time, client FROM acks "
            "WHERE channel = ? AND offset >= ? AND epoch = ? LIMIT ?",
            (channel, offset, epoch, limit),
        ).fetchall()
        return [(str(r[0]), Ack(int(r[1]), str(r[2]), float(r[3]), str(r[4]))) for r in rows]

    def _num_streams(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM streams").fetchone()[0])

    def _sweep(self) -> None:
        now = self.clock()
        for channel, ttl in self.db.execute(
            "SELECT channel, ttl FROM streams WHERE ttl > 0"
        ).fetchall():
            self.db.execute(
                "DELETE FROM pubs WHERE channel = ? AND time <= ?", (channel, now - ttl)
            )
