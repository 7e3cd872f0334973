"""The coordinator: asks the application back end about connects, subscriptions,
publications and RPCs, the way Centrifugo's proxies do.

`core/commands.py` calls in here only when a proxy is configured for what a
client asks; everything about building requests, reading answers and turning
them into the node's terms (ReplyError, DisconnectError, payload bytes) lives
here. Answers of the back end reach the client unchanged: an `error` becomes
the reply's error (code, message, temporary), a `disconnect` closes the
connection with its code and reason. A back end that gives no usable answer
(down, slow, not 200, garbage) gives the client Centrifugo's temporary error
100; a refresh that fails is tried again after `proxy.refresh_retry`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from msgspec import Raw

from tidings.errors import DisconnectError, ReplyError
from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.codes import Disconnect, ErrorCode, ReplyErrorInfo
from tidings.protocol.centrifuge.messages import EMPTY
from tidings.protocol.centrifuge.messages import ConnectRequest as ClientConnectRequest
from tidings.protocol.centrifuge.messages import RPCRequest as ClientRPCRequest
from tidings.protocol.centrifuge.messages import SubscribeRequest as ClientSubscribeRequest
from tidings.protocol.centrifuge.payload import InvalidPayload, compact_json
from tidings.upstream import proxy_messages as pm
from tidings.upstream.proxy import ProxyClient, ProxyUnavailable
from tidings.upstream.proxy_config import PROXY_TYPES, ProxyEndpoint

if TYPE_CHECKING:
    from tidings.channel_options import ChannelOptions
    from tidings.core.channels import Channel
    from tidings.core.client import Client
    from tidings.settings import Settings

log = logging.getLogger(__name__)

RPC_NAMESPACE_BOUNDARY = ":"
#: Longest close reason a WebSocket close frame can carry, bytes.
MAX_CLOSE_REASON = 123

R = TypeVar("R")
RefreshResultT = TypeVar("RefreshResultT", pm.RefreshResult, pm.SubRefreshResult)


@dataclass(slots=True)
class ConnectionUpstream:
    """What the coordinator keeps about one connection (in `Client.upstream`)."""

    #: Allow-listed headers of the client's HTTP request, names in lower case.
    headers: dict[str, str] = field(default_factory=dict)
    #: Allow-listed emulated headers of the connect request, names in lower case.
    emulated: dict[str, str] = field(default_factory=dict)
    #: `meta` of the connect proxy's result: sent back with `include_connection_meta`.
    meta: bytes = b""
    #: The connection is refreshed through the refresh proxy, not by the client.
    server_refresh: bool = False
    #: Channels whose subscriptions are refreshed through the sub_refresh proxy.
    server_sub_refresh: set[str] = field(default_factory=set)


@dataclass(slots=True)
class ProxiedConnect:
    user: str
    info: bytes
    data: bytes
    expire_at: int
    channels: tuple[str, ...]
    #: Per server-side channel: (info, data).
    subs: dict[str, tuple[bytes, bytes]]
    server_refresh: bool

    def sub_options(self, name: str) -> tuple[bytes, bytes]:
        return self.subs.get(name, (b"", b""))


@dataclass(slots=True)
class ProxiedSubscribe:
    info: bytes
    data: bytes
    expire_at: int
    server_refresh: bool


@dataclass(slots=True)
class ProxiedPublish:
    data: Raw
    skip_history: bool
    tags: dict[str, str] | None
    idempotency_key: str


class Coordinator:
    """The node's proxies to the application back end (Centrifugo v6 compatible)."""

    def __init__(self, settings: Settings) -> None:
        proxy = settings.proxy
        self._proxy = proxy
        self._named = settings.proxies
        self._rpc_namespaces = settings.rpc_namespaces
        self.http = ProxyClient(proxy.max_concurrent, proxy.max_waiting)
        self.connect_endpoint = proxy.connect if proxy.connect.active else None
        self.refresh_endpoint = proxy.refresh if proxy.refresh.active else None
        endpoints = [proxy.endpoint(kind) for kind in PROXY_TYPES] + list(self._named.values())
        #: Header names (lower case) any endpoint passes on: only these are kept per connection.
        self.header_names = frozenset(h.lower() for e in endpoints for h in e.http_headers)
        self.emulated_names = frozenset(h.lower() for e in endpoints for h in e.emulated_headers)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connect_enabled(self) -> bool:
        return self.connect_endpoint is not None

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.http.close()

    # --- per connection --------------------------------------------------------------

    def remember_headers(self, client: Client, headers: Mapping[str, str]) -> None:
        """Keep the allow-listed headers of the client's HTTP request (any case of names)."""
        if not self.header_names:
            return
        kept = {k.lower(): v for k, v in headers.items() if k.lower() in self.header_names}
        if kept:
            self._state(client).headers = kept

    def _remember_emulated(self, client: Client, headers: dict[str, str] | None) -> None:
        """Keep the allow-listed emulated headers of a connect request (sane values only)."""
        if not headers or not self.emulated_names:
            return
        kept = {
            k.lower(): v
            for k, v in headers.items()
            if k.lower() in self.emulated_names and _header_value(v)
        }
        if kept:
            self._state(client).emulated = kept

    @staticmethod
    def _state(client: Client) -> ConnectionUpstream:
        if client.upstream is None:
            client.upstream = ConnectionUpstream()
        return client.upstream

    def _base(self, client: Client, endpoint: ProxyEndpoint) -> dict[str, Any]:
        return {
            "client": client.id,
            "transport": client.transport.name,
            "protocol": "protobuf" if client.codec.binary else "json",
            "encoding": "binary" if endpoint.binary_encoding else "json",
        }

    def _user_fields(self, client: Client, endpoint: ProxyEndpoint) -> dict[str, Any]:
        fields = self._base(client, endpoint)
        fields["user"] = client.user
        state = client.upstream
        if endpoint.include_connection_meta and state is not None and state.meta:
            fields["meta"] = Raw(state.meta)
        return fields

    async def _call(
        self,
        kind: str,
        client: Client,
        endpoint: ProxyEndpoint,
        request: pm.ProxyRequest,
        response_type: type[R],
    ) -> R:
        state = client.upstream
        if state is None:
            return await self.http.call(kind, endpoint, request, response_type)
        return await self.http.call(
            kind, endpoint, request, response_type, state.headers, emulated_headers=state.emulated
        )

    # --- connect and refresh -------------------------------------------------------------

    async def connect(self, client: Client, req: ClientConnectRequest) -> ProxiedConnect:
        """Ask the connect proxy who the client is (a connection without a token)."""
        endpoint = self.connect_endpoint
        assert endpoint is not None
        self._remember_emulated(client, req.headers)
        request = pm.ConnectRequest(
            **self._base(client, endpoint),
            name=req.name,
            version=req.version,
            channels=list(req.subs) if req.subs else None,
            **_data_fields(req.data, endpoint),
        )
        try:
            response = await self._call("connect", client, endpoint, request, pm.ConnectResponse)
            _raise_answered(response)
            result = response.result or pm.ConnectResult()
            json_client = not client.codec.binary
            subs: dict[str, tuple[bytes, bytes]] = {}
            for name, opts in (result.subs or {}).items():
                subs[name] = (
                    _payload(opts.info, opts.b64info, True),
                    _payload(opts.data, opts.b64data, json_client),
                )
            channels = list(result.channels or ())
            channels += [name for name in subs if name not in channels]
            proxied = ProxiedConnect(
                user=result.user,
                info=_payload(result.info, result.b64info, True),
                data=_payload(result.data, result.b64data, json_client),
                expire_at=result.expire_at,
                channels=tuple(channels),
                subs=subs,
                server_refresh=bool(result.expire_at) and self.refresh_endpoint is not None,
            )
            meta = _payload(result.meta, "", True)
        except ProxyUnavailable as exc:
            raise self._unavailable("connect", endpoint, exc) from None
        if client.closed:
            # Gone while the back end thought: indexing it now would leave a ghost.
            raise DisconnectError(codes.FORCE_DISCONNECT)
        if meta or proxied.server_refresh:
            state = self._state(client)
            state.meta, state.server_refresh = meta, proxied.server_refresh
        return proxied

    def connection_expired(self, client: Client) -> bool:
        """At a proxied connection's expiry: refresh it through the back end (True if so)."""
        state = client.upstream
        if state is None or not state.server_refresh or self.refresh_endpoint is None:
            return False
        self._spawn(self._refresh(client, self.refresh_endpoint), "proxy-refresh")
        return True

    async def _refresh(self, client: Client, endpoint: ProxyEndpoint) -> None:
        request = pm.RefreshRequest(**self._user_fields(client, endpoint))
        try:
            response = await self._call("refresh", client, endpoint, request, pm.RefreshResponse)
            result = _refresh_result(response.result)
            info = _payload(result.info, result.b64info, True)
            meta = _payload(result.meta, "", True)
        except ProxyUnavailable as exc:
            self.http.failed("refresh", endpoint, exc)
            if not client.closed:
                client.set_expiry(_seconds_from_now(self._proxy.refresh_retry))
            return
        if client.closed:
            return
        if result.expired or (result.expire_at and result.expire_at <= time.time()):
            client.disconnect(codes.EXPIRED)
            return
        if info:
            client.info = info
        if meta and client.upstream is not None:
            client.upstream.meta = meta
        client.set_expiry(result.expire_at)

    # --- channels ---------------------------------------------------------------------------

    def _channel_endpoint(self, kind: str, options: ChannelOptions) -> ProxyEndpoint | None:
        if not getattr(options, f"{kind}_proxy_enabled"):
            return None
        name: str = getattr(options, f"{kind}_proxy_name")
        if name:
            return self._named[name]
        endpoint = self._proxy.endpoint(kind)
        return endpoint if endpoint.active else None

    def subscribe_endpoint(self, channel: Channel) -> ProxyEndpoint | None:
        """The subscribe proxy of `channel`, if any (never for private or user-limited ones)."""
        if channel.private or channel.user_limited:
            return None  # those carry their own access rules, as in Centrifugo
        return self._channel_endpoint("subscribe", channel.options)

    async def subscribe(
        self,
        client: Client,
        channel: Channel,
        endpoint: ProxyEndpoint,
        req: ClientSubscribeRequest,
    ) -> ProxiedSubscribe:
        request = pm.SubscribeRequest(
            **self._user_fields(client, endpoint),
            channel=channel.name,
            **_data_fields(req.data, endpoint),
        )
        try:
            response = await self._call(
                "subscribe", client, endpoint, request, pm.SubscribeResponse
            )
            _raise_answered(response)
            result = response.result or pm.SubscribeResult()
            info = _payload(result.info, result.b64info, True)
            data = _payload(result.data, result.b64data, not client.codec.binary)
        except ProxyUnavailable as exc:
            raise self._unavailable("subscribe", endpoint, exc) from None
        server_refresh = bool(result.expire_at) and (
            self._channel_endpoint("sub_refresh", channel.options) is not None
        )
        if server_refresh:
            self._state(client).server_sub_refresh.add(channel.name)
        return ProxiedSubscribe(info, data, result.expire_at, server_refresh)

    def subscription_expired(self, client: Client, name: str) -> bool:
        """At a proxied subscription's expiry: refresh it through the back end (True if so)."""
        state = client.upstream
        if state is None or name not in state.server_sub_refresh:
            return False
        channel = client.node.rules.resolve(name)
        endpoint = self._channel_endpoint("sub_refresh", channel.options)
        if endpoint is None:
            return False
        self._spawn(self._sub_refresh(client, name, endpoint), "proxy-sub-refresh")
        return True

    async def _sub_refresh(self, client: Client, name: str, endpoint: ProxyEndpoint) -> None:
        request = pm.SubRefreshRequest(**self._user_fields(client, endpoint), channel=name)
        retry = False
        try:
            response = await self._call(
                "sub_refresh", client, endpoint, request, pm.SubRefreshResponse
            )
            result = _refresh_result(response.result)
            info = _payload(result.info, result.b64info, True)
        except ProxyUnavailable as exc:
            self.http.failed("sub_refresh", endpoint, exc)
            retry = True
        sub = client.subscriptions.get(name)
        if client.closed or sub is None:
            return
        if retry:
            sub.expire_at = _seconds_from_now(self._proxy.refresh_retry)
        elif result.expired or (result.expire_at and result.expire_at <= time.time()):
            client.disconnect(codes.SUBSCRIPTION_EXPIRED)
            return
        else:
            if info:
                sub.info = info
            sub.expire_at = result.expire_at
        if sub.expire_at:
            client.watch_subscription_expiry(name, sub.expire_at)

    def publish_endpoint(self, channel: Channel) -> ProxyEndpoint | None:
        return self._channel_endpoint("publish", channel.options)

    async def publish(
        self, client: Client, channel: Channel, endpoint: ProxyEndpoint, data: Raw
    ) -> ProxiedPublish:
        """Ask the publish proxy; its answer may replace the data, tags and history."""
        request = pm.PublishRequest(
            **self._user_fields(client, endpoint),
            channel=channel.name,
            **_data_fields(data, endpoint),
        )
        try:
            response = await self._call("publish", client, endpoint, request, pm.PublishResponse)
            _raise_answered(response)
            result = response.result or pm.PublishResult()
            # Every subscriber may read JSON: a replacement must be JSON too.
            replaced = _payload(result.data, result.b64data, True)
        except ProxyUnavailable as exc:
            raise self._unavailable("publish", endpoint, exc) from None
        return ProxiedPublish(
            data=Raw(replaced) if replaced else data,
            skip_history=result.skip_history,
            tags=result.tags or None,
            idempotency_key=result.idempotency_key,
        )

    # --- RPC ---------------------------------------------------------------------------------

    def rpc_endpoint(self, method: str) -> ProxyEndpoint | None:
        """The proxy of RPC `method`: by its `ns:` prefix, else `[proxy.rpc]`."""
        ns, sep, _ = method.partition(RPC_NAMESPACE_BOUNDARY)
        if sep:
            namespace = self._rpc_namespaces.get(ns)
            if namespace is not None:
                if not namespace.proxy_enabled:
                    return None
                if namespace.proxy_name:
                    return self._named[namespace.proxy_name]
        endpoint = self._proxy.rpc
        return endpoint if endpoint.active else None

    async def rpc(self, client: Client, endpoint: ProxyEndpoint, req: ClientRPCRequest) -> bytes:
        request = pm.RPCRequest(
            **self._user_fields(client, endpoint),
            method=req.method,
            **_data_fields(req.data, endpoint),
        )
        try:
            response = await self._call("rpc", client, endpoint, request, pm.RPCResponse)
            _raise_answered(response)
            result = response.result or pm.RPCResult()
            return _payload(result.data, result.b64data, not client.codec.binary)
        except ProxyUnavailable as exc:
            raise self._unavailable("rpc", endpoint, exc) from None

    # --- helpers -----------------------------------------------------------------------------

    def _unavailable(self, kind: str, endpoint: ProxyEndpoint, exc: ProxyUnavailable) -> ReplyError:
        """Count the failure; the client gets Centrifugo's temporary error 100."""
        self.http.failed(kind, endpoint, exc)
        return ReplyError(ErrorCode.INTERNAL)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _header_value(value: str) -> bool:
    """Whether a client-given value can be an HTTP header value (no line breaks, bounded)."""
    return len(value) <= 8192 and not any(c in value for c in "\r\n\x00")


def _data_fields(data: Raw | bytes, endpoint: ProxyEndpoint) -> dict[str, Any]:
    """`data` as raw JSON, or as `b64data` in binary mode (or when it is not JSON)."""
    if not len(data):
        return {}
    if endpoint.binary_encoding or not _is_json(data):
        return {"b64data": base64.b64encode(bytes(data)).decode()}
    return {"data": data if isinstance(data, Raw) else Raw(data)}


def _refresh_result(result: RefreshResultT | None) -> RefreshResultT:
    """A refresh answer without a result (an error, a disconnect) fails: it is tried again."""
    if result is None:
        raise ProxyUnavailable("garbage", "refresh answer without a result")
    return result


def _payload(value: Raw, b64: str, must_be_json: bool) -> bytes:
    """A payload of an answer as bytes: base64-decoded, or its JSON made compact.

    Compact because a JSON client's frame separates messages by newlines: a
    pretty-printed value would split it.
    """
    if b64:
        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProxyUnavailable("garbage", f"bad base64: {exc}") from None
        if must_be_json and data:
            return _compact(data, "base64 payload")
        return data
    if value is EMPTY or not len(value):
        return b""
    return _compact(value, "payload")


def _compact(data: bytes | Raw, what: str) -> bytes:
    """The back end's JSON checked and compacted like any payload entering the node."""
    try:
        return compact_json(data)
    except InvalidPayload as exc:
        raise ProxyUnavailable("garbage", f"{what}: {exc}") from None


def _is_json(data: bytes | Raw) -> bool:
    try:
        compact_json(data)
    except InvalidPayload:
        return False
    return True


def _raise_answered(response: Any) -> None:
    """Raise the back end's own disconnect or error, checked for sense."""
    disconnect: pm.Disconnect | None = response.disconnect
    if disconnect is not None:
        if not 3000 <= disconnect.code <= 4999:
            raise ProxyUnavailable("garbage", f"disconnect code {disconnect.code} not 3000-4999")
        reason = disconnect.reason.encode()[:MAX_CLOSE_REASON].decode("utf-8", "ignore")
        raise DisconnectError(Disconnect(disconnect.code, reason))
    error: pm.Error | None = response.error
    if error is not None:
        if error.code == 0:
            raise ProxyUnavailable("garbage", "error code 0")
        raise backend_error(error.code, error.message, error.temporary)


def backend_error(code: int, message: str, temporary: bool) -> ReplyError:
    """A ReplyError carrying the back end's own code (any, not only the protocol's)."""
    exc = ReplyError(ErrorCode.INTERNAL, message)
    exc.info = ReplyErrorInfo(code, message, temporary)
    return exc


def _seconds_from_now(delay: float) -> int:
    return int(time.time()) + max(1, math.ceil(delay))
