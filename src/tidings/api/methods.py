"""The server API methods: decoded requests in, result objects out.

Method names, request fields and result shapes follow Centrifugo's server
API so that its client libraries (`cent`) work unchanged. Errors are raised
as `ReplyError` and become `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import asyncio
import os
import resource
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from msgspec import Raw

from tidings import __version__
from tidings.api import requests as rq
from tidings.api.idempotency import IdempotencyCache
from tidings.core.node import Node
from tidings.errors import ReplyError
from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.codes import Disconnect, ErrorCode
from tidings.store.base import Position, UnrecoverablePosition

Result = dict[str, Any]
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
        }

    @property
    def method_names(self) -> list[str]:
        return sorted(self._methods)

    def decode(self, method: str, body: bytes) -> Any:
        """The typed request of `method`; ReplyError 104 / 107 says what is wrong."""
        entry = self._methods.get(method)
        if entry is None:
            raise ReplyError(ErrorCode.METHOD_NOT_FOUND, f"unknown API method {method!r}")
        try:
            return msgspec.json.decode(body or b"{}", type=entry[0])
        except msgspec.ValidationError as exc:
            raise ReplyError(ErrorCode.BAD_REQUEST, f"invalid {method} request: {exc}") from None
        except msgspec.DecodeError as exc:
            raise ReplyError(ErrorCode.BAD_REQUEST, f"body is not valid JSON: {exc}") from None

    async def call(self, method: str, request: Any) -> Result:
        return await self._methods[method][1](request)

    # --- publications -----------------------------------------------------------------

    async def publish(self, req: rq.PublishRequest) -> Result:
        data = _payload(req.data, req.b64data)
        if req.idempotency_key:
            earlier = self._idempotency.get(f"{req.channel}\x00{req.idempotency_key}")
            if earlier is not None:
                return dict(earlier)
        self.node.rules.resolve(req.channel)
        position = await self.node.publish(
            req.channel, data, tags=req.tags, skip_history=req.skip_history
        )
        result = _position(position)
        if req.idempotency_key:
            self._idempotency.put(f"{req.channel}\x00{req.idempotency_key}", result)
        return result

    async def broadcast(self, req: rq.BroadcastRequest) -> Result:
        if not req.channels:
            raise ReplyError(ErrorCode.BAD_REQUEST, "channels required")
        responses: list[Result] = []
        for channel in req.channels:
            single = rq.PublishRequest(
                channel=channel,
                data=req.data,
                skip_history=req.skip_history,
                tags=req.tags,
                b64data=req.b64data,
                idempotency_key=req.idempotency_key,
            )
            responses.append(await self._respond(self.publish(single)))
        return {"responses": responses}

    # --- users and connections ---------------------------------------------------------

    async def subscribe(self, req: rq.SubscribeRequest) -> Result:
        _need(req.user, "user")
        await self.node.subscribe_user(
            req.user, req.channel, client_id=req.client, info=bytes(req.info), data=bytes(req.data)
        )
        return {}

    async def unsubscribe(self, req: rq.UnsubscribeRequest) -> Result:
        _need(req.user, "user")
        await self.node.unsubscribe_user(req.user, req.channel, client_id=req.client)
        return {}

    async def disconnect(self, req: rq.DisconnectRequest) -> Result:
        _need(req.user, "user")
        disconnect = codes.FORCE_DISCONNECT
        if req.disconnect is not None and req.disconnect.code:
            code = req.disconnect.code
            if not (3000 <= code <= 4999):
                raise ReplyError(ErrorCode.BAD_REQUEST, "disconnect code must be 3000-4999")
            disconnect = Disconnect(code, req.disconnect.reason)
        self.node.disconnect_user(
            req.user,
            disconnect,
            client_id=req.client,
            whitelist=frozenset(req.whitelist or ()),
        )
        return {}

    async def refresh(self, req: rq.RefreshRequest) -> Result:
        _need(req.user, "user")
        self.node.refresh_user(
            req.user, client_id=req.client, expired=req.expired, expire_at=req.expire_at
        )
        return {}

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
            raise ReplyError(ErrorCode.NOT_AVAILABLE, "presence is off in this channel")

    async def history(self, req: rq.HistoryRequest) -> Result:
        if not self.node.rules.resolve(req.channel).options.history_enabled:
            raise ReplyError(ErrorCode.NOT_AVAILABLE, "history is off in this channel")
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
        found = self.node.hub.channels(req.pattern)
        return {"channels": {name: {"num_clients": n} for name, n in found.items()}}

    async def info(self, req: rq.InfoRequest) -> Result:
        node = self.node
        usage = resource.getrusage(resource.RUSAGE_SELF)
        items: dict[str, float] = {f"counter.{k}": v for k, v in node.counters.items()}
        items.update({f"events.dropped.{k}": v for k, v in node.events.dropped.items()})
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
                }
            ]
        }

    async def batch(self, req: rq.BatchRequest) -> Result:
        calls: list[Awaitable[Result]] = []
        names: list[str] = []
        for command in req.commands:
            if len(command) != 1:
                raise ReplyError(ErrorCode.BAD_REQUEST, "each batch command has one method")
            ((method, body),) = command.items()
            if method == "batch":
                raise ReplyError(ErrorCode.BAD_REQUEST, "batch inside batch")
            names.append(method)
            calls.append(self._run(method, bytes(body)))
        if req.parallel:
            results = await asyncio.gather(*(self._respond(c) for c in calls))
        else:
            results = [await self._respond(c) for c in calls]
        replies = [
            {name: r["result"]} if "result" in r else r
            for name, r in zip(names, results, strict=True)
        ]
        return {"replies": replies}

    async def _run(self, method: str, body: bytes) -> Result:
        return await self.call(method, self.decode(method, body))

    @staticmethod
    async def _respond(call: Awaitable[Result]) -> Result:
        """`{"result": ...}` or `{"error": ...}` for one call (used in broadcast and batch)."""
        try:
            return {"result": await call}
        except ReplyError as exc:
            return {"error": {"code": exc.code, "message": exc.info.message}}


def _payload(data: Raw, b64data: str) -> Raw:
    if b64data:
        raise ReplyError(
            ErrorCode.BAD_REQUEST, "b64data is not supported: JSON clients need JSON data"
        )
    if not len(data):
        raise ReplyError(ErrorCode.BAD_REQUEST, "data required")
    return data


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
