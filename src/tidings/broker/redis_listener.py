"""One PUB/SUB connection to one Redis server: batched subscriptions, reconnects.

A listener keeps the set of PUB/SUB channels its node wants and makes the
server's set follow it: changes made in one event-loop turn go out as one
SUBSCRIBE and one UNSUBSCRIBE (SSUBSCRIBE/SUNSUBSCRIBE per hash slot in a
cluster, where one command may not span slots). When the connection drops,
it says so, reconnects with a growing delay, subscribes to everything again
and then reports the channels it got back.

In a Redis Cluster a channel's slot can move to another primary (a
failover, or a slot migration): the server then drops the channel by
itself (an SUNSUBSCRIBE nobody asked for) or refuses to subscribe it
(a MOVED error). The listener hands such channels to `on_moved`, forgets
them, and the broker subscribes them on the primary that owns them now.

The connection is plain redis-py (`Connection.send_command` /
`read_response` with hiredis); a watchdog pings every `ping_interval` and
drops a connection that stayed silent for two intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot

from tidings.engine.redis import UNREACHABLE

log = logging.getLogger(__name__)

#: Channels per SUBSCRIBE command (bounded request size).
MAX_BATCH = 512
#: Reconnect delays grow from MIN to MAX seconds.
MIN_RETRY_DELAY = 0.05
MAX_RETRY_DELAY = 1.0

MessageHandler = Callable[[bytes, bytes], None]


class ListenerUnavailable(Exception):
    """The listener is not connected: the subscription cannot be confirmed now."""


class PubSubListener:
    """The PUB/SUB connection of a node to one server (a shard, or a cluster primary)."""

    def __init__(
        self,
        client: Redis,
        *,
        sharded: bool,
        on_message: MessageHandler,
        on_lost: Callable[[str], None],
        on_restored: Callable[[list[bytes]], None],
        on_moved: Callable[[list[bytes]], None] | None = None,
        ping_interval: float = 1.0,
    ) -> None:
        self.client = client
        self._on_moved = on_moved
        self.sharded = sharded
        self._on_message = on_message
        self._on_lost = on_lost
        self._on_restored = on_restored
        self.ping_interval = ping_interval
        #: What the node wants, and what the server confirmed on this connection.
        self.wanted: set[bytes] = set()
        self.active: set[bytes] = set()
        #: Channels wanted or dropped since the last flush: what it looks at (not every
        #: channel, so a subscription costs the same with 10 or 100,000 channels).
        self._changed: set[bytes] = set()
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = defaultdict(list)
        self._conn: AbstractConnection | None = None
        self._connected = asyncio.Event()
        self._flush_scheduled = False
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._received = True
        self._restoring: set[bytes] = set()
        #: Sent SUBSCRIBE, confirmation not yet read.
        self._inflight: set[bytes] = set()
        self._was_connected = False

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        """Connect (raising the connection error if the server is not there) and listen."""
        conn = self._new_connection()
        await conn.connect()  # type: ignore[no-untyped-call]
        self._conn = conn
        self._connected.set()
        self._task = asyncio.get_running_loop().create_task(self._run(conn))

    def _new_connection(self) -> AbstractConnection:
        """A connection of its own (not from the pool: PUB/SUB mode is for good)."""
        conn: AbstractConnection = self.client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        return conn

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.disconnect(nowait=True)
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(ListenerUnavailable("closed"))
        self._waiters.clear()

    # --- what the node wants -------------------------------------------------------

    def want(self, channel: bytes) -> asyncio.Future[None]:
        """Subscribe (in this turn's batch); the future is done once the server confirmed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.wanted.add(channel)
        self._changed.add(channel)
        if channel in self.active:
            future.set_result(None)
        elif not self.connected:
            future.set_exception(ListenerUnavailable("not connected"))
        else:
            self._waiters[channel].append(future)
            self._schedule_flush()
        return future

    def drop(self, channel: bytes) -> None:
        """Unsubscribe (in this turn's batch)."""
        self.wanted.discard(channel)
        self._changed.add(channel)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_flush)

    def _start_flush(self) -> None:
        self._flush_scheduled = False
        conn = self._conn
        if conn is None or not self.connected:
            return
        asyncio.get_running_loop().create_task(self._flush(conn))

    async def _flush(self, conn: AbstractConnection) -> None:
        # One flush at a time: each computes its changes after the previous one was
        # written, so an UNSUBSCRIBE never overtakes the SUBSCRIBE that follows it.
        async with self._flush_lock:
            if conn is not self._conn:
                return  # reconnected meanwhile: the new connection subscribes afresh
            changed, self._changed = self._changed, set()
            wanted, active, inflight = self.wanted, self.active, self._inflight
            adds = [c for c in changed if c in wanted and c not in active and c not in inflight]
            removes = [c for c in changed if c in active and c not in wanted]
            self.active.difference_update(removes)
            self._inflight.update(adds)
            try:
                await self._send(conn, "SUBSCRIBE", adds)
                await self._send(conn, "UNSUBSCRIBE", removes)
            except UNREACHABLE as exc:
                await conn.disconnect(nowait=True)
                log.debug("PUB/SUB send failed: %s", exc)

    async def _send(self, conn: AbstractConnection, verb: str, channels: Iterable[bytes]) -> None:
        if self.sharded:
            verb = "S" + verb
            groups: dict[int, list[bytes]] = defaultdict(list)
            for channel in channels:
                groups[key_slot(channel)].append(channel)
            batches: Iterable[list[bytes]] = groups.values()
        else:
            batches = [list(channels)]
        for batch in batches:
            for start in range(0, len(batch), MAX_BATCH):
                chunk = batch[start : start + MAX_BATCH]
                if chunk:
                    await conn.send_command(verb, *chunk, check_health=False)

    # --- the connection ------------------------------------------------------------

    async def _run(self, conn: AbstractConnection) -> None:
        delay = MIN_RETRY_DELAY
        while True:
            try:
                await self._listen(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = str(exc) or type(exc).__name__
            else:
                error = "connection closed"
            self._lost(error)
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
                conn = self._new_connection()
                try:
                    await conn.connect()  # type: ignore[no-untyped-call]
                except UNREACHABLE:
                    continue
                break
            delay = MIN_RETRY_DELAY
            self._conn = conn

    def _lost(self, error: str) -> None:
        was_connected = self.connected
        self._connected.clear()
        self.active.clear()
        self._restoring.clear()
        self._inflight.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(ListenerUnavailable(error))
        self._waiters.clear()
        if was_connected:
            try:
                self._on_lost(error)
            except Exception:
                log.exception("on_lost callback failed")

    async def _listen(self, conn: AbstractConnection) -> None:
        reconnected = self._was_connected
        restoring = set(self.wanted) if reconnected else set()
        self._restoring = restoring
        self._inflight = set(restoring)
        self._was_connected = True
        if restoring:
            await self._send(conn, "SUBSCRIBE", restoring)
        elif reconnected:
            self._report_restored([])
        self._connected.set()
        self._schedule_flush()
        watchdog = asyncio.get_running_loop().create_task(self._watch(conn))
        try:
            await self._read(conn)
        finally:
            watchdog.cancel()

    async def _read(self, conn: AbstractConnection) -> None:
        on_message = self._on_message
        while True:
            try:
                reply: Any = await conn.read_response(
                    timeout=math.inf, disconnect_on_error=True, push_request=True
                )
            except (redis_errors.AskError, redis_errors.TryAgainError) as exc:
                # SSUBSCRIBE of a slot this server does not own (any more): the
                # connection is fine, the channels of that slot belong elsewhere.
                self._received = True
                self._refused(exc)
                continue
            self._received = True
            if not isinstance(reply, list) or not reply:
                continue
            kind = reply[0]
            if kind in (b"message", b"smessage"):
                try:
                    on_message(reply[1], reply[2])
                except Exception:
                    log.exception("PUB/SUB message handler failed")
            elif kind in (b"subscribe", b"ssubscribe"):
                self._confirmed(reply[1])
            elif kind == b"sunsubscribe" and reply[1] in self.active:
                # Not ours (an UNSUBSCRIBE we send leaves `active` first): the server
                # dropped the channel because its slot moved to another primary.
                self._moved([reply[1]])
            # unsubscribe confirmations and pongs only prove the connection is alive

    def _refused(self, exc: redis_errors.ResponseError) -> None:
        slot = getattr(exc, "slot_id", None)
        if slot is None:  # TRYAGAIN names no slot: every channel not yet confirmed
            channels = set(self._inflight)
        else:
            channels = {c for c in self._inflight if key_slot(c) == int(slot)}
        log.info("PUB/SUB subscribe refused (%s): %d channels moved", exc, len(channels))
        self._moved(sorted(channels))

    def _moved(self, channels: list[bytes]) -> None:
        """`channels` are served elsewhere now: forget them here and hand them over."""
        was_restoring = bool(self._restoring)
        for channel in channels:
            self.active.discard(channel)
            self._inflight.discard(channel)
            self._restoring.discard(channel)
            self.wanted.discard(channel)
            for waiter in self._waiters.pop(channel, ()):
                if not waiter.done():
                    waiter.set_exception(ListenerUnavailable("the channel's slot moved"))
        if was_restoring and not self._restoring:
            self._report_restored(sorted(self.active & self.wanted))
        if channels and self._on_moved is not None:
            try:
                self._on_moved(channels)
            except Exception:
                log.exception("on_moved callback failed")

    def _confirmed(self, channel: bytes) -> None:
        self._inflight.discard(channel)
        self.active.add(channel)
        if channel not in self.wanted:
            self._changed.add(channel)
            self._schedule_flush()  # dropped meanwhile: unsubscribe again
        for waiter in self._waiters.pop(channel, ()):
            if not waiter.done():
                waiter.set_result(None)
        if channel in self._restoring:
            self._restoring.discard(channel)
            if not self._restoring:
                self._report_restored(sorted(self.active & self.wanted))

    def _report_restored(self, channels: list[bytes]) -> None:
        try:
            self._on_restored(channels)
        except Exception:
            log.exception("on_restored callback failed")

    async def _watch(self, conn: AbstractConnection) -> None:
        """Ping; a connection that answers nothing for two intervals is dropped."""
        silent = 0
        while True:
            await asyncio.sleep(self.ping_interval)
            if self._received:
                self._received, silent = False, 0
            else:
                silent += 1
                if silent >= 2:
                    await conn.disconnect(nowait=True)
                    return
            try:
                await conn.send_command("PING", check_health=False)
            except UNREACHABLE:
                return
