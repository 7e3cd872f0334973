"""The server API methods: decoded requests in, result objects out.

Method names, request fields and result shapes follow Centrifugo's server
API so that its client libraries (`cent`) work unchanged. Errors are raised
as `ReplyError` and become `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from msgspec import Raw

from tidings import __version__
from tidings.api import requests as rq
from tidings.api.idempotency import IdempotencyCache
from tidings.api.map_methods import MapApi
from tidings.api.payloads import optional_payload as _optional_payload
from tidings.api.shared_poll_methods import SharedPollApi
from tidings.core.commands import checked_payload
from tidings.core.node import Node
from tidings.errors import ReplyError
from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.codes import Disconnect, ErrorCode
from tidings.store.base import OutOfRange, Position, StoreWriteError, UnrecoverablePosition

Result = dict[str, Any]
MAX_USERS_PER_STATUS = 1000
#: Calls of a batch (or channels of a broadcast) run between two yields to the event loop.
YIELD_EVERY = 32
Method = Callable[[Any], Awaitable[Result]]


class ServerApi:
    """Runs API methods against a node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._idempotency = IdempotencyCache()
        self._methods: dict[str, tuple[type[Any], Method]] = {
            "publish": (rq.PublishRequest, self.publish),
            "broadcast": (rq.BroadcastRequest, self.broadcast),
            "subscribe": (rq.SubscribeRequest, self.subscribe),
            "unsubscribe": (rq.UnsubscribeRequest, self.unsubscribe),
            "disconnect": (rq.DisconnectRequest, self.disconnect),
            "refresh": (rq.RefreshRequest, self.refresh),
            "presence": (rq.ChannelRequest, self.presence),
            "presence_stats": (rq.ChannelRequest, self.presence_stats),
            "history": (rq.HistoryRequest, self.history),
            "history_remove": (rq.ChannelRequest, self.history_remove),
            "channels": (rq.ChannelsRequest, self.channels),
            "info": (rq.InfoRequest, self.info),
            "batch": (rq.BatchRequest, self.batch),
            "user_status": (rq.UserStatusRequest, self.user_status),
            "user_connections": (rq.UserConnectionsRequest, self.user_connections),
            "broadcast_all": (rq.BroadcastAllRequest, self.broadcast_all),
            "delivery_status": (rq.DeliveryStatusRequest, self.delivery_status),
            **MapApi(node.maps).methods(),
            **SharedPollApi(node.shared_polls).methods(),
        }

    def register(self, name: str, request_type: type[Any], method: Method) -> None:
        """Add a method (e.g. the debug methods) served like the built-in ones."""
        self._methods[name] = (request_type, method)

    @property
    def method_names(self) -> list[str]:
        return sorted(self._methods)

    def decode(self, method: str, body: bytes) -> Any:
        """The typed request of `method`; ReplyError 104 / 107 says what is wrong."""
        entry = self._methods.get(method)
        if entry is None:
            raise ReplyError(ErrorCode.METHOD_NOT_FOUND, f"unknown API method {method!r}")
        try:
            request = msgspec.json.decode(body or b"{}", type=entry[0])
        except msgspec.ValidationError as exc:
            if str(exc).startswith("Object missing required field"):
                raise MissingField(f"invalid {method} request: {exc}") from None
            raise ReplyError(ErrorCode.BAD_REQUEST, f"invalid {method} request: {exc}") from None
        except msgspec.DecodeError as exc:
            raise ReplyError(ErrorCode.BAD_REQUEST, f"body is not valid JSON: {exc}") from None
        except RecursionError:
            raise ReplyError(ErrorCode.BAD_REQUEST, "body is nested too deep") from None
        limit = self.node.settings.api_batch_max_commands
        if isinstance(request, rq.BatchRequest) and len(request.commands) > limit:
            count = len(request.commands)
            raise ReplyError(
                ErrorCode.BAD_REQUEST, f"batch of {count}: at most {limit} (api_batch_max_commands)"
            )
        return _checked_payloads(request)

    async def call(self, method: str, request: Any) -> Result:
        try:
            return await self._methods[method][1](request)
        except OutOfRange as exc:
            # A number beyond 64 bits that got past the decoder: refused before any I/O.
            raise ReplyError(ErrorCode.BAD_REQUEST, str(exc)) from None
        except StoreWriteError as exc:
            # The engine (Redis) is down or slow: say so, never a silent success.
            raise ReplyError(ErrorCode.INTERNAL, str(exc)) from None

    # --- publications -----------------------------------------------------------------

    async def publish(self, req: rq.PublishRequest) -> Result:
        return await self._publish(req, _payload(req.data, req.b64data))

    async def _publish(self, req: rq.PublishRequest, data: Raw) -> Result:
        """Publish `data`, already checked and compacted, as `req` says."""
        options = self.node.rules.resolve(req.channel).options
        if options.subscription_type != "stream":
            kind = options.subscription_type
            raise ReplyError(ErrorCode.BAD_REQUEST, f"{kind} channel: publish with map_publish")
        # Channels with history keep idempotency keys in their stream (durable ones
        # across restarts); the others in a short-lived cache here.
        cache_key = ""
        if req.idempotency_key and (req.skip_history or not options.history_enabled):
            cache_key = f"{req.channel}\x00{req.idempotency_key}"
            earlier = self._idempotency.get(cache_key)
            if earlier is not None:
                return dict(earlier)
        position = await self.node.publish(
            req.channel,
            data,
            tags=req.tags,
            skip_history=req.skip_history,
            idempotency_key=req.idempotency_key,
            delta=req.delta,
        )
        result = _position(position)
        if cache_key:
            self._idempotency.put(cache_key, result)
        return result

    async def broadcast(self, req: rq.BroadcastRequest) -> Result:
        if not req.channels:
            raise ReplyError(ErrorCode.BAD_REQUEST, "channels required")
        data = _payload(req.data, req.b64data)  # compacted once (in decode) for every channel
        singles = [
            rq.PublishRequest(
                channel=channel,
                data=data,
                skip_history=req.skip_history,
                tags=req.tags,
                idempotency_key=req.idempotency_key,
                delta=req.delta,
            )
            for channel in req.channels
        ]
        responses: list[Result] = []
        if req.idempotency_key:  # one at a time: a repeated channel must find the first's key
            for index, single in enumerate(singles):
                if index and not index % YIELD_EVERY:
                    await asyncio.sleep(0)  # a long broadcast must not hold the event loop
                responses.append(await self._respond(self._publish(single, data)))
            return {"responses": responses}
        # YIELD_EVERY channels issued in one turn, awaited together (one engine round trip);
        # a channel named twice keeps its order (see `_run_in_order`).
        for start in range(0, len(singles), YIELD_EVERY):
            group = singles[start : start + YIELD_EVERY]
            responses += await asyncio.gather(
                *(self._respond(self._publish(p, data)) for p in group)
            )
        return {"responses": responses}

    # --- users and connections ---------------------------------------------------------

    async def subscribe(self, req: rq.SubscribeRequest) -> Result:
        _need(req.user, "user")
        since = req.recover_since
        await self.node.peers.subscribe_user(
            req.user,
            req.channel,
            client_id=req.client,
            info=bytes(_optional_payload(req.info, req.b64info, "b64info")),
            data=bytes(_optional_payload(req.data, req.b64data, "b64data")),
            since=Position(since.offset, since.epoch) if since is not None else None,
            session=req.session,
        )
        return {}

    async def unsubscribe(self, req: rq.UnsubscribeRequest) -> Result:
        _need(req.user, "user")
        await self.node.peers.unsubscribe_user(
            req.user, req.channel, client_id=req.client, session=req.session
        )
        return {}

    async def disconnect(self, req: rq.DisconnectRequest) -> Result:
        _need(req.user, "user")
        disconnect = codes.FORCE_DISCONNECT
        if req.disconnect is not None and req.disconnect.code:
            code = req.disconnect.code
            if not (3000 <= code <= 4999):
                raise ReplyError(ErrorCode.BAD_REQUEST, "disconnect code must be 3000-4999")
            disconnect = Disconnect(code, req.disconnect.reason)
        await self.node.peers.disconnect_user(
            req.user,
            disconnect,
            client_id=req.client,
            whitelist=frozenset(req.whitelist or ()),
            session=req.session,
        )
        return {}

    async def refresh(self, req: rq.RefreshRequest) -> Result:
        _need(req.user, "user")
        await self.node.peers.refresh_user(
            req.user,
            client_id=req.client,
            expired=req.expired,
            expire_at=req.expire_at,
            session=req.session,
        )
        return {}

    async def user_status(self, req: rq.UserStatusRequest) -> Result:
        if len(req.users) > MAX_USERS_PER_STATUS:
            raise ReplyError(ErrorCode.BAD_REQUEST, f"at most {MAX_USERS_PER_STATUS} users")
        statuses = []
        for user in req.users:
            status = self.node.users.status(user)
            elsewhere = len(await self.node.peers.connections(user))
            statuses.append(
                {
                    "user": user,
                    "online": status.online or elsewhere > 0,
                    "connections": status.connections + elsewhere,
                    "last_seen": int(status.last_seen),
                }
            )
        return {"statuses": statuses}

    async def user_connections(self, req: rq.UserConnectionsRequest) -> Result:
        _need(req.user, "user")
        connections = {}
        for client in self.node.user_connections.user_clients(req.user):
            connections[client.id] = {
                "client": client.id,
                "user": client.user,
                "transport": client.transport.name,
                "remote_addr": client.transport.remote_addr,
                "connected_at": int(client.connected_at),
                "name": client.name,
                "version": client.version,
                "channels": sorted(client.subscriptions),
            }
        for remote in await self.node.peers.connections(req.user):
            connections[remote.client] = {
                "client": remote.client,
                "user": remote.user,
                "node": remote.node,
                "info": Raw(remote.info) if remote.info else None,
            }
        return {"connections": connections}

    async def broadcast_all(self, req: rq.BroadcastAllRequest) -> Result:
        if not self.node.settings.personal_channel:
            raise ReplyError(ErrorCode.NOT_AVAILABLE, "personal channels are off")
        rate = req.rate or self.node.settings.broadcast_all_rate
        if rate <= 0:
            raise ReplyError(ErrorCode.BAD_REQUEST, "rate must be positive")
        task_id, users = await self.node.peers.broadcast_all(
            _payload(req.data, ""), rate, tags=req.tags
        )
        return {"task": task_id, "users": users, "rate": rate, "seconds": users / rate}

    async def delivery_status(self, req: rq.DeliveryStatusRequest) -> Result:
        """Is the publication stored, delivered to a connection, acknowledged — when, by whom."""
        node = self.node
        if not node.rules.resolve(req.channel).options.history_enabled:
            raise ReplyError(ErrorCode.NOT_AVAILABLE, "channel keeps no history")
        offset = req.offset
        if req.idempotency_key:
            offset = await node.history.find(req.channel, req.idempotency_key)
        if offset <= 0:
            raise ReplyError(ErrorCode.BAD_REQUEST, "offset or a known idempotency_key required")
        top = await node.history.position(req.channel)
        stored = False
        if offset <= top.offset:
            with contextlib.suppress(UnrecoverablePosition):
                pubs, _ = await node.history.read(req.channel, Position(offset - 1, top.epoch), 1)
                stored = bool(pubs) and pubs[0].offset == offset
        record = node.deliveries.get(req.channel, offset)
        acks = await node.history.acks(req.channel, offset)
        return {
            "channel": req.channel,
            "offset": offset,
            "epoch": top.epoch,
            "stored": stored,
            "stored_at": record.stored_at if record else 0.0,
            "delivered": bool(record and record.delivered_at),
            "delivered_at": record.delivered_at if record else 0.0,
            "delivered_to": list(record.delivered_to) if record else [],
            "acked": bool(acks),
            "acked_at": min((a.time for _, a in acks), default=0.0),
            "acked_by": [{"user": u, "client": a.client, "time": a.time} for u, a in acks],
        }

    # --- channels -------------------------------------------------------------------------

    async def presence(self, req: rq.ChannelRequest) -> Result:
        self._need_presence(req.channel)
        return {"presence": await self.node.presence.get(req.channel)}

    async def presence_stats(self, req: rq.ChannelRequest) -> Result:
        self._need_presence(req.channel)
        num_clients, num_users = await self.node.presence.stats(req.channel)
        return {"num_clients": num_clients, "num_users": num_users}

    def _need_presence(self, name: str) -> None:
        if not self.node.rules.resolve(name).options.presence:
            raise ReplyError(ErrorCode.NOT_AVAILABLE, "not available")

    async def history(self, req: rq.HistoryRequest) -> Result:
        if not self.node.rules.resolve(req.channel).options.history_enabled:
            raise ReplyError(ErrorCode.NOT_AVAILABLE, "not available")
        since = Position(req.since.offset, req.since.epoch) if req.since else None
        try:
            pubs, top = await self.node.history.read(req.channel, since, req.limit, req.reverse)
        except UnrecoverablePosition as exc:
            raise ReplyError(ErrorCode.UNRECOVERABLE_POSITION, str(exc)) from None
        return {"publications": pubs, "offset": top.offset, "epoch": top.epoch}

    async def history_remove(self, req: rq.ChannelRequest) -> Result:
        self.node.rules.resolve(req.channel)
        await self.node.history.remove(req.channel)
        return {}

    async def channels(self, req: rq.ChannelsRequest) -> Result:
        found = await self.node.peers.channels(req.pattern)
        return {"channels": {name: {"num_clients": n} for name, n in found.items()}}

    async def info(self, req: rq.InfoRequest) -> Result:
        node = self.node
        usage = resource.getrusage(resource.RUSAGE_SELF)
        refused = node.refusals()
        items: dict[str, float] = {
            f"counter.{k}": v for k, v in node.counters.items() if k not in refused
        }
        items.update({f"events.dropped.{k}": v for k, v in node.events.dropped.items()})
        items.update({f"refused.{k}": v for k, v in refused.items()})
        if node.user_events is not None:
            items["user_events.sent"] = node.user_events.sent
            items["user_events.failures"] = node.user_events.failures
        for task_id, progress in node.broadcasts.progress.items():
            items.update({f"broadcast_all.{task_id}.{k}": v for k, v in progress.items()})
        return {
            "nodes": [
                {
                    "uid": node.uid,
                    "name": node.name,
                    "version": __version__,
                    **node.stats(),
                    "metrics": {"interval": 0.0, "items": items},
                    "process": {
                        "cpu": usage.ru_utime + usage.ru_stime,
                        "rss": _rss_bytes(),
                    },
                },
                *node.peers.info(),
            ]
        }

    async def batch(self, req: rq.BatchRequest) -> Result:
        calls: list[tuple[str, bytes]] = []
        for command in req.commands:
            if len(command) != 1:
                raise ReplyError(ErrorCode.BAD_REQUEST, "each batch command has one method")
            ((method, body),) = command.items()
            if method == "batch":
                raise ReplyError(ErrorCode.BAD_REQUEST, "batch inside batch")
            calls.append((method, bytes(body)))
        if req.parallel:
            results = await self._run_parallel(calls)
        else:
            results = await self._run_in_order(calls)
        replies = [
            {name: r["result"]} if "result" in r else r
            for (name, _), r in zip(calls, results, strict=True)
        ]
        return {"replies": replies}

    async def _run_parallel(self, calls: list[tuple[str, bytes]]) -> list[Result]:
        """YIELD_EVERY calls at a time, concurrently, yielding to the loop between groups."""
        results: list[Result] = []
        for start in range(0, len(calls), YIELD_EVERY):
            if start:
                await asyncio.sleep(0)  # a large batch must not stall every other client
            group = calls[start : start + YIELD_EVERY]
            results += await asyncio.gather(*(self._respond(self._run(m, b)) for m, b in group))
        return results

    async def _run_in_order(self, calls: list[tuple[str, bytes]]) -> list[Result]:
        """Each call applied after the ones before it, as Centrifugo's sequential batch.

        Consecutive publications are issued together, in order, in one loop turn
        and awaited together: the engine applies what one turn issues in the
        order it was issued (the Redis engine's per-turn pipeline per server,
        the memory broker's per-channel lock), so each channel's offsets follow
        the batch's order while the batch pays one engine round trip per run of
        publications rather than one per publication. Any other call (and a
        publication with an idempotency key, whose earlier twin must have
        answered first) waits for what was issued before it.
        """
        results: list[Result] = []
        issued: list[asyncio.Future[Result]] = []
        for index, (method, body) in enumerate(calls):
            if index and not index % YIELD_EVERY:
                results += await _settled(issued)  # an engine round trip yields to the loop
                await asyncio.sleep(0)
            try:
                request = self.decode(method, body)
            except ReplyError as exc:
                issued.append(_ready(_error(exc)))
                continue
            if _pipelined(request):
                issued.append(asyncio.ensure_future(self._respond(self.call(method, request))))
                if isinstance(request, rq.BroadcastRequest):
                    # Its later channels go out after its first group: nothing may overtake them.
                    results += await _settled(issued)
                continue
            results += await _settled(issued)
            results.append(await self._respond(self.call(method, request)))
        results += await _settled(issued)
        return results

    async def _run(self, method: str, body: bytes) -> Result:
        return await self.call(method, self.decode(method, body))

    @staticmethod
    async def _respond(call: Awaitable[Result]) -> Result:
        """`{"result": ...}` or `{"error": ...}` for one call (used in broadcast and batch)."""
        try:
            return {"result": await call}
        except ReplyError as exc:
            return _error(exc)


def _error(exc: ReplyError) -> Result:
    return {"error": {"code": exc.code, "message": exc.info.message}}


def _pipelined(request: Any) -> bool:
    """Whether a sequential batch may issue `request` without awaiting the calls before it."""
    return isinstance(request, (rq.PublishRequest, rq.BroadcastRequest)) and (
        not request.idempotency_key
    )


def _ready(result: Result) -> asyncio.Future[Result]:
    future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
    future.set_result(result)
    return future


async def _settled(issued: list[asyncio.Future[Result]]) -> list[Result]:
    """The results of `issued` in order (each a result or an error reply); empties it."""
    if not issued:
        return []
    pending = list(issued)
    issued.clear()
    return list(await asyncio.gather(*pending))


def _payload(data: Raw, b64data: str) -> Raw:
    payload = _optional_payload(data, b64data, "b64data")
    if not len(payload):
        raise ReplyError(ErrorCode.BAD_REQUEST, "data required")
    return payload


def _checked_payloads(request: Any) -> Any:
    """`request` with its payloads checked and compacted (error 107, HTTP 400, if invalid).

    This is where API payloads enter: once checked here they are stored and
    relayed as they are, to every channel of a broadcast too.
    """
    if isinstance(request, rq.SubscribeRequest) and len(request.info):
        request.info = checked_payload(request.info, "info")
    if isinstance(request, _WITH_DATA) and len(request.data):
        request.data = checked_payload(request.data, "data")
    return request


_WITH_DATA = (
    rq.PublishRequest,
    rq.BroadcastRequest,
    rq.BroadcastAllRequest,
    rq.SubscribeRequest,
)


class MissingField(ReplyError):
    """A request without a field its method needs: 107 in an HTTP 200 answer, as Centrifugo.

    (A body that does not decode at all, or has an unknown or mistyped field, is HTTP 400.)
    """

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.BAD_REQUEST, message)


def _need(value: str, name: str) -> None:
    if not value:
        raise ReplyError(ErrorCode.BAD_REQUEST, f"{name} required")


def _position(position: Position) -> Result:
    return {"offset": position.offset, "epoch": position.epoch} if position.epoch else {}


def _rss_bytes() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
