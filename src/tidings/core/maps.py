"""Map channels (Centrifugo v6 map subscriptions): keyed state, snapshot, then live changes.

A namespace with `subscription_type = "map"` holds a keyed state per channel
in a `KeyedStateStore`. Writers (the server API's `map_publish` /
`map_remove`, or clients allowed to publish) change one key; the change gets
the channel's next offset in the store and is then delivered like any
publication, with its `key` (and `removed` for a removal).

A subscriber (`SubscribeRequest.type == 1`) goes through the phases the SDKs
drive (client.proto: 2 state, 1 stream, 0 live):

1. state pages (`phase: 2`, `cursor`, `limit`), each answered with the
   channel's position; the first page's position is the snapshot position;
2. stream pages (`phase: 1`, `offset`, `epoch`) with the changes since it;
3. when the remaining changes fit in one reply, the answer is live
   (`phase: 0`): the client is added to the channel, the last changes are
   read again after that (so none falls between), and the client is told
   whether the channel is recoverable.

A subscriber asking for `delta: "fossil"` in a namespace that allows it
gets its values as `map_deltas` describes (per-key fossil deltas).

A reconnecting client recovers with `phase: 1, recover: true` from its
position; when the store no longer has what followed it the answer is error
112 and the SDK starts again from a fresh snapshot. A page is bounded both
by `limit` and by what the client's outbox has room for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import msgspec

from tidings.core import deltas
from tidings.core.map_deltas import recovered_for_delta, state_for_delta
from tidings.core.map_presence import MapPresence
from tidings.core.outbox import REPLY_MARGIN, encoded_size
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode
from tidings.protocol.centrifuge.messages import (
    ClientInfo,
    Publication,
    PublishRequest,
    SubscribeRequest,
    SubscribeResult,
    raw,
)
from tidings.protocol.centrifuge.payload import InvalidPayload, compact_json
from tidings.store.base import OutOfRange, Position, StoreWriteError, UnrecoverablePosition
from tidings.store.keyed import (
    InvalidKey,
    KeyedEntry,
    KeyedStateStore,
    MapLimits,
    StatePage,
    WriteCondition,
)

if TYPE_CHECKING:
    from tidings.broker.base import Broker
    from tidings.core.channels import Channel
    from tidings.core.client import Client
    from tidings.core.node import Node

log = logging.getLogger(__name__)

PHASE_LIVE, PHASE_STREAM, PHASE_STATE = 0, 1, 2
#: SubscribeRequest.type of a map subscription.
TYPE_MAP = 1
#: The subscription type of each kind of map namespace (2 and 3: map presence, see
#: `tidings.core.map_presence`); a namespace takes subscriptions of its type only.
MAP_TYPES = {"map": TYPE_MAP, "map_clients": 2, "map_users": 3}
DEFAULT_PAGE, MAX_PAGE = 100, 1000
#: Seconds between sweeps that turn expired keys into removals.
EXPIRE_INTERVAL = 1.0


def limits_of(channel: Channel) -> MapLimits:
    opts = channel.options
    return MapLimits(
        key_ttl=opts.map_key_ttl,
        stream_size=opts.map_stream_size,
        stream_ttl=opts.map_stream_ttl,
    )


def encode_info(info: ClientInfo | None) -> bytes:
    """A writer's ClientInfo as the keyed store keeps it with the key and the change."""
    return msgspec.json.encode(info) if info is not None else b""


def _decode_info(info: bytes) -> ClientInfo | None:
    if not info:
        return None
    try:
        return msgspec.json.decode(info, type=ClientInfo)
    except msgspec.DecodeError:  # never written by tidings: leave it out rather than fail a read
        return None


def publication_of(entry: KeyedEntry) -> Publication:
    """The publication of one change (or state entry), as subscribers receive it."""
    return Publication(
        data=raw(entry.data),
        info=_decode_info(entry.info),
        offset=entry.offset,
        tags=entry.tags or None,
        time=entry.time,
        key=entry.key,
        removed=entry.removed,
    )


def _wants_delta(channel: Channel, req: SubscribeRequest) -> bool:
    """Whether the subscriber asked for deltas the namespace allows (type checked before)."""
    return req.delta == deltas.FOSSIL and deltas.FOSSIL in channel.options.allowed_delta_types


class MapChannels:
    """The map channels of one node (see the module docstring)."""

    def __init__(self, node: Node, store: KeyedStateStore, broker: Broker | None = None) -> None:
        self.node = node
        self.store = store
        #: On a cluster: changes go to every node through it (the node delivers what
        #: its broker hands it, as for any publication). Alone: delivered here.
        self.broker = broker
        self._sweeper: asyncio.Task[None] | None = None
        self.presence = MapPresence(self)

    async def _deliver(self, name: str, pub: Publication, delta: bool = False) -> None:
        if self.broker is None:
            self.node.deliver(name, pub, delta)
            return
        try:
            await self.broker.publish(name, pub, delta=delta)
        except StoreWriteError as exc:
            # The change is stored (offset taken): subscribers recover it from the stream.
            log.warning("map change of %r not broadcast: %s", name, exc)

    def channel(self, name: str) -> Channel:
        """The map channel `name`; 107 when its namespace does not keep keyed state."""
        channel = self.node.rules.resolve(name)
        if channel.options.subscription_type not in MAP_TYPES:
            raise ReplyError(ErrorCode.BAD_REQUEST, "not a map channel")
        return channel

    # --- writes -----------------------------------------------------------------

    async def publish(
        self,
        name: str,
        key: str,
        data: bytes,
        condition: WriteCondition | None = None,
        *,
        delta: bool = False,
    ) -> Position:
        """Set `key` of map channel `name` and deliver the change.

        With `delta` (or the namespace's `delta_publish`), delta subscribers may
        get it as a delta against the key's previous value. `WriteSuppressed`
        (from the store) when `condition` makes it change nothing.
        """
        channel = self.channel(name)
        try:
            entry, position = await self.store.publish(
                name, key, data, limits_of(channel), condition
            )
        except (InvalidKey, OutOfRange) as exc:
            raise ReplyError(ErrorCode.BAD_REQUEST, str(exc)) from None
        await self._deliver(name, publication_of(entry), delta)
        return position

    async def remove(self, name: str, key: str, idempotency_key: str = "") -> tuple[bool, Position]:
        """Remove `key`; (False, top) when it was not there (nothing delivered)."""
        channel = self.channel(name)
        try:
            entry, position = await self.store.remove(
                name, key, limits_of(channel), idempotency_key
            )
        except (InvalidKey, OutOfRange) as exc:
            raise ReplyError(ErrorCode.BAD_REQUEST, str(exc)) from None
        if entry is None:
            return False, position
        await self._deliver(name, publication_of(entry))
        return True, position

    async def client_publish(self, client: Client, channel: Channel, req: PublishRequest) -> None:
        """A client's map publish or remove (`check_publish` already passed)."""
        if req.type != TYPE_MAP:
            raise ReplyError(ErrorCode.BAD_REQUEST, "map channels take map publications")
        if req.removed:
            await self.remove(channel.name, req.key)
            return
        try:
            data = compact_json(req.data)
        except InvalidPayload as exc:
            raise ReplyError(ErrorCode.BAD_REQUEST, f"data: {exc}") from None
        info = WriteCondition(info=encode_info(client.client_info))
        await self.publish(channel.name, req.key, data, info)

    # --- subscribing --------------------------------------------------------------

    async def subscribe(
        self,
        client: Client,
        channel: Channel,
        req: SubscribeRequest,
        *,
        info: bytes = b"",
        expire_at: int = 0,
    ) -> SubscribeResult:
        """Answer one phase of a map subscription (permissions already checked).

        `info` and `expire_at` (from a subscription token) apply once the
        subscription goes live.
        """
        if MAP_TYPES.get(channel.options.subscription_type) != req.type or not req.type:
            # Centrifugo's answer to a subscription type the namespace does not take.
            kind = channel.options.subscription_type
            raise ReplyError(
                ErrorCode.PERMISSION_DENIED, f"{kind} channel: wrong subscription type"
            )
        if req.limit < 0 or req.offset < 0:
            raise ReplyError(ErrorCode.BAD_REQUEST, "negative limit or offset")
        limit = min(req.limit or DEFAULT_PAGE, MAX_PAGE)
        try:
            if req.phase == PHASE_STATE:
                return await self._state_phase(client, channel, req, limit, (info, expire_at))
            if req.phase in (PHASE_STREAM, PHASE_LIVE):
                since = Position(req.offset, req.epoch)
                grant = (info, expire_at)
                return await self._stream_phase(client, channel, req, since, limit, grant=grant)
        except UnrecoverablePosition:
            raise ReplyError(ErrorCode.UNRECOVERABLE_POSITION) from None
        except (InvalidKey, OutOfRange) as exc:
            raise ReplyError(ErrorCode.BAD_REQUEST, str(exc)) from None
        raise ReplyError(ErrorCode.BAD_REQUEST, f"unknown map phase {req.phase}")

    def _budget(self, client: Client) -> int:
        return max(0, client.outbox.limit - client.outbox.size - REPLY_MARGIN)

    async def _state_phase(
        self,
        client: Client,
        channel: Channel,
        req: SubscribeRequest,
        limit: int,
        grant: tuple[bytes, int],
    ) -> SubscribeResult:
        page = await self.store.read_state(channel.name, req.cursor, limit)
        values, cursor = self._fit(page, self._budget(client))
        state = values
        if _wants_delta(channel, req):
            state = state_for_delta(values, client.codec.binary)
        snapshot = page.position
        if req.epoch and req.epoch != snapshot.epoch:
            # The map was cleared while the client paged: the new epoch makes it start over.
            return SubscribeResult(
                type=req.type, phase=PHASE_STATE, epoch=snapshot.epoch, offset=snapshot.offset
            )
        if req.epoch or req.cursor:
            snapshot = Position(req.offset, req.epoch or snapshot.epoch)
        if cursor:
            return SubscribeResult(
                type=req.type,
                phase=PHASE_STATE,
                epoch=snapshot.epoch,
                offset=snapshot.offset,
                state=state,
                cursor=cursor,
            )
        # Last page: go live from the snapshot position.
        result = await self._stream_phase(
            client, channel, req, snapshot, limit, grant=grant, known=values
        )
        if result.phase == PHASE_LIVE:
            result.state = state or None
            return result
        # Too many changes since the snapshot for one reply: they come as stream pages.
        result.phase, result.state = PHASE_STATE, state or None
        result.publications, result.offset = None, snapshot.offset
        return result

    def _fit(self, page: StatePage, budget: int) -> tuple[list[Publication], str]:
        state = [publication_of(e) for e in page.entries]
        if encoded_size(state) <= budget:
            return state, page.cursor
        while len(state) > 1 and encoded_size(state) > budget:
            state = state[: len(state) // 2]
        if encoded_size(state) > budget:
            raise ReplyError(ErrorCode.LIMIT_EXCEEDED, "a map entry does not fit the outbox")
        return state, state[-1].key

    async def _stream_phase(
        self,
        client: Client,
        channel: Channel,
        req: SubscribeRequest,
        since: Position,
        limit: int,
        *,
        grant: tuple[bytes, int],
        known: list[Publication] | None = None,
    ) -> SubscribeResult:
        """The stream from `since`, live when it fits; `known`: state entries read
        before it (the last state page), which with it tell the values at its top."""
        changes, top = await self.store.read_stream(channel.name, since, limit)
        pubs = [publication_of(c) for c in changes]
        recoverable = channel.options.map_stream_size > 0 and channel.options.map_stream_ttl > 0
        if (changes and changes[-1].offset < top.offset) or encoded_size(pubs) > self._budget(
            client
        ):
            while len(pubs) > 1 and encoded_size(pubs) > self._budget(client):
                pubs = pubs[: len(pubs) // 2]
            offset = pubs[-1].offset
            if _wants_delta(channel, req):
                pubs = state_for_delta(pubs, client.codec.binary)
            return SubscribeResult(
                type=req.type,
                phase=PHASE_STREAM,
                epoch=top.epoch,
                offset=offset,
                publications=pubs,
                recoverable=recoverable,
            )
        last = Position(changes[-1].offset, top.epoch) if changes else since
        wants_delta = _wants_delta(channel, req)
        seed: list[Publication] = list(known or ())
        if wants_delta and not self.node.batches.knows_map(channel.name):
            # The node's first delta subscriber: the whole state (up to a page) tells
            # the values deltas start from; read before the client is added, so no
            # live publication reaches it before its reply.
            page = await self.store.read_state(channel.name, "", MAX_PAGE)
            if page.position.epoch == top.epoch:
                seed += [publication_of(e) for e in page.entries]
        info, expire_at = grant
        result = await self.node.subscriptions.subscribe_client(
            client, channel, info=info, expire_at=expire_at
        )
        try:
            # Changes made while the client was being added: read after it was.
            more, top = await self.store.read_stream(channel.name, last, MAX_PAGE)
        except UnrecoverablePosition:
            await self.node.subscriptions.unsubscribe_client(client, channel.name, push=False)
            raise
        pubs += [publication_of(c) for c in more]
        sub = client.subscriptions.get(channel.name)
        if sub is not None:
            # Live publications up to here are in this reply: do not send them twice.
            sub.epoch, sub.floor = top.epoch, top.offset
            if wants_delta:
                # Values at the top: the state read before it, then every change since.
                values: dict[str, bytes | None] = {e.key: bytes(e.data) for e in seed}
                for pub in pubs:
                    values[pub.key] = None if pub.removed else bytes(pub.data)
                if (pubs[-1].offset if pubs else since.offset) != top.offset:
                    values = {}  # not every change up to the top was read: learn nothing
                self.node.batches.map_delta_subscribed(channel.name, values, top.offset)
                pubs = recovered_for_delta(pubs, client.codec.binary)
                sub.delta = result.delta = True
        self._start_sweeper()
        result.type, result.phase = req.type, PHASE_LIVE
        result.recoverable, result.positioned = recoverable, True
        result.epoch, result.offset = top.epoch, top.offset
        result.publications = pubs or None
        result.was_recovering = req.recover
        result.recovered = req.recover
        return result

    # --- expiry -----------------------------------------------------------------------

    def _start_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(EXPIRE_INTERVAL)
            await self.sweep()

    async def sweep(self) -> None:
        """Turn expired keys of the map channels with local subscribers into removals."""
        for name in list(self.node.hub.channels()):
            try:
                channel = self.node.rules.resolve(name)
                opts = channel.options
                if opts.subscription_type not in MAP_TYPES or not opts.map_key_ttl:
                    continue
                for entry in await self.store.expire(name, limits_of(channel)):
                    await self._deliver(name, publication_of(entry))
            except Exception:  # one channel's failure never stops the sweep of others
                log.exception("expiring keys of map channel %r failed", name)

    async def close(self) -> None:
        await self.presence.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.store.close()
