"""Request and response bodies of the HTTP proxy, as Centrifugo v6 sends and reads them.

Field names follow Centrifugo's proxy protocol (`proxyproto/proxy.proto`, JSON
form): every request starts with `client`, `transport`, `protocol`, `encoding`;
empty fields are omitted. JSON payloads (`data`, `info`, `meta`) travel as raw
JSON; in binary mode (`binary_encoding`) as base64 in the `b64*` fields.

Responses are decoded leniently about unknown fields (a back end written for a
newer Centrifugo keeps working) and strictly about types and ranges: a value
out of range is a broken answer, never a surprise inside the node.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Raw, Struct

from tidings.protocol.centrifuge.messages import EMPTY

Int64 = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Uint32 = Annotated[int, Meta(ge=0, le=2**32 - 1)]


class _Request(Struct, omit_defaults=True, kw_only=True):
    client: str
    transport: str
    protocol: str
    encoding: str


class ConnectRequest(_Request):
    name: str = ""
    version: str = ""
    data: Raw = EMPTY
    b64data: str = ""
    channels: list[str] | None = None


class RefreshRequest(_Request):
    user: str = ""
    meta: Raw = EMPTY


class SubscribeRequest(_Request):
    user: str = ""
    channel: str = ""
    meta: Raw = EMPTY
    data: Raw = EMPTY
    b64data: str = ""


class PublishRequest(_Request):
    user: str = ""
    channel: str = ""
    data: Raw = EMPTY
    b64data: str = ""
    meta: Raw = EMPTY


class SubRefreshRequest(_Request):
    user: str = ""
    channel: str = ""
    meta: Raw = EMPTY


class RPCRequest(_Request):
    user: str = ""
    method: str = ""
    data: Raw = EMPTY
    b64data: str = ""
    meta: Raw = EMPTY


class SharedPollRefreshItem(Struct, omit_defaults=True):
    key: str
    version: int = 0


class SharedPollRefreshRequest(Struct, omit_defaults=True):
    """Not about one client: no `client`/`transport` fields (proxyproto)."""

    channel: str
    items: list[SharedPollRefreshItem]


ProxyRequest = (
    ConnectRequest
    | RefreshRequest
    | SubscribeRequest
    | PublishRequest
    | SubRefreshRequest
    | RPCRequest
    | SharedPollRefreshRequest
)


# --- responses --------------------------------------------------------------------


class Error(Struct):
    code: Uint32 = 0
    message: str = ""
    temporary: bool = False


class Disconnect(Struct):
    code: Uint32 = 0
    reason: str = ""


class SubscribeOptions(Struct):
    """Options of one server-side subscription in a connect result."""

    expire_at: Int64 = 0
    info: Raw = EMPTY
    b64info: str = ""
    data: Raw = EMPTY
    b64data: str = ""


class ConnectResult(Struct):
    user: str = ""
    expire_at: Int64 = 0
    info: Raw = EMPTY
    b64info: str = ""
    data: Raw = EMPTY
    b64data: str = ""
    channels: list[str] | None = None
    subs: dict[str, SubscribeOptions] | None = None
    meta: Raw = EMPTY


class RefreshResult(Struct):
    expired: bool = False
    expire_at: Int64 = 0
    info: Raw = EMPTY
    b64info: str = ""
    meta: Raw = EMPTY


class SubscribeResult(Struct):
    expire_at: Int64 = 0
    info: Raw = EMPTY
    b64info: str = ""
    data: Raw = EMPTY
    b64data: str = ""


class PublishResult(Struct):
    data: Raw = EMPTY
    b64data: str = ""
    skip_history: bool = False
    tags: dict[str, str] | None = None
    idempotency_key: str = ""


class SubRefreshResult(Struct):
    expired: bool = False
    expire_at: Int64 = 0
    info: Raw = EMPTY
    b64info: str = ""


class RPCResult(Struct):
    data: Raw = EMPTY
    b64data: str = ""


class ConnectResponse(Struct):
    result: ConnectResult | None = None
    error: Error | None = None
    disconnect: Disconnect | None = None


class RefreshResponse(Struct):
    result: RefreshResult | None = None
    error: Error | None = None
    disconnect: Disconnect | None = None


class SubscribeResponse(Struct):
    result: SubscribeResult | None = None
    error: Error | None = None
    disconnect: Disconnect | None = None


class PublishResponse(Struct):
    result: PublishResult | None = None
    error: Error | None = None
    disconnect: Disconnect | None = None


class SubRefreshResponse(Struct):
    result: SubRefreshResult | None = None
    error: Error | None = None
    disconnect: Disconnect | None = None


class RPCResponse(Struct):
    result: RPCResult | None = None
    error: Error | None = None
    disconnect: Disconnect | None = None


ProxyResponse = (
    ConnectResponse
    | RefreshResponse
    | SubscribeResponse
    | PublishResponse
    | SubRefreshResponse
    | RPCResponse
)
