"""Typed Centrifuge v2 messages: commands from clients, replies and pushes to them.

Field names and meanings follow `client.proto` of the protocol. `data`-like
fields are `msgspec.Raw`: the JSON bytes the client sent, passed through
without being decoded, so a publication's payload is never re-encoded.
Every struct omits its default values when encoded, as the protocol's JSON
form does.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Raw, Struct, field

#: The empty payload. Always use this object (via `raw()`), never `Raw(b"")`:
#: msgspec omits a default only when it is this very object.
EMPTY = Raw()


def raw(data: bytes) -> Raw:
    """`data` as a raw JSON payload, or the omitted empty payload."""
    return Raw(data) if data else EMPTY


class _Message(Struct, omit_defaults=True):
    pass


class _Written(str):
    """The type of `WRITTEN`."""


#: The default of string fields that Centrifugo's JSON always has, even empty:
#: msgspec omits a default only when it is this very object, so a value of ""
#: is written (`"user":""`) while an unset field is not.
WRITTEN = _Written()


# --- requests (client -> server) -------------------------------------------------


class StreamPosition(_Message):
    offset: int = 0
    epoch: str = ""


class FilterNode(_Message):
    """A publication tags filter (client.proto): a leaf when `op` is "", else and/or/not."""

    op: str = ""
    key: str = ""
    cmp: str = ""
    val: str = ""
    vals: list[str] = field(default_factory=list)
    nodes: list[FilterNode] = field(default_factory=list)


class SubscribeRequest(_Message):
    channel: str = ""
    token: str = ""
    recover: bool = False
    epoch: str = ""
    offset: int = 0
    data: Raw = EMPTY
    positioned: bool = False
    recoverable: bool = False
    join_leave: bool = False
    delta: str = ""
    #: A tags filter (a `FilterNode`), kept undecoded until the channel allows one.
    tf: Raw = EMPTY
    #: Bits of `SUBSCRIBE_FLAG_*`.
    flag: int = 0
    #: 0 stream (the default), 1 map, 2 map clients, 3 map users (client.proto).
    type: int = 0
    #: Map subscriptions: 0 live, 1 stream catch-up, 2 state pages.
    phase: int = 0
    cursor: str = ""
    limit: int = 0
    asc: bool = False


class ConnectRequest(_Message):
    token: str = ""
    data: Raw = EMPTY
    subs: dict[str, SubscribeRequest] | None = None
    name: str = ""
    version: str = ""
    #: Emulated HTTP headers (SDK option `headers`), passed on by proxies that list them.
    headers: dict[str, str] | None = None


class UnsubscribeRequest(_Message):
    channel: str = ""


class PublishRequest(_Message):
    channel: str = ""
    data: Raw = EMPTY
    #: 0 an ordinary publication, 1 a map change of `key` (`removed`: its removal).
    type: int = 0
    key: str = ""
    removed: bool = False


class PresenceRequest(_Message):
    channel: str = ""


class PresenceStatsRequest(_Message):
    channel: str = ""


class HistoryRequest(_Message):
    channel: str = ""
    limit: int = 0
    since: StreamPosition | None = None
    reverse: bool = False


class PingRequest(_Message):
    pass


class SendRequest(_Message):
    data: Raw = EMPTY


class RPCRequest(_Message):
    data: Raw = EMPTY
    method: str = ""


class RefreshRequest(_Message):
    token: str = ""


class KeyedItem(_Message):
    """A shared poll key and the version of it the client has."""

    key: str = ""
    version: int = 0


class TrackBatch(_Message):
    """Keys to track, with the signature the application's back end gave for them."""

    signature: str = ""
    items: list[KeyedItem] | None = None


class SubRefreshRequest(_Message):
    channel: str = ""
    token: str = ""
    #: 0 token refresh, 1 track keys, 2 untrack keys (shared poll subscriptions).
    type: int = 0
    track: list[TrackBatch] | None = None
    untrack: list[str] | None = None


class Command(_Message):
    """One client command: an id and exactly one request (none at all is a pong)."""

    id: Annotated[int, Meta(ge=0, le=0xFFFFFFFF)] = 0  # uint32 in client.proto
    connect: ConnectRequest | None = None
    subscribe: SubscribeRequest | None = None
    unsubscribe: UnsubscribeRequest | None = None
    publish: PublishRequest | None = None
    presence: PresenceRequest | None = None
    presence_stats: PresenceStatsRequest | None = None
    history: HistoryRequest | None = None
    ping: PingRequest | None = None
    send: SendRequest | None = None
    rpc: RPCRequest | None = None
    refresh: RefreshRequest | None = None
    sub_refresh: SubRefreshRequest | None = None


REQUEST_FIELDS: tuple[str, ...] = (
    "connect",
    "subscribe",
    "unsubscribe",
    "publish",
    "presence",
    "presence_stats",
    "history",
    "ping",
    "send",
    "rpc",
    "refresh",
    "sub_refresh",
)


# --- results, pushes and replies (server -> client) ------------------------------


class Error(_Message):
    code: int = 0
    message: str = ""
    temporary: bool = False


class ClientInfo(_Message):
    user: str = WRITTEN
    client: str = WRITTEN
    conn_info: Raw = EMPTY
    chan_info: Raw = EMPTY


class Publication(_Message):
    data: Raw = EMPTY
    info: ClientInfo | None = None
    offset: int = 0
    tags: dict[str, str] | None = None
    time: int = 0
    #: `data` is a fossil delta against the subscriber's previous publication.
    delta: bool = False
    #: Map channels: the key this publication sets (or removes).
    key: str = ""
    removed: bool = False
    #: Shared poll: the version of the key's data.
    version: int = 0
    #: Shared poll: the publisher's epoch of that version.
    epoch: str = ""


class SubscribeResult(_Message):
    expires: bool = False
    ttl: int = 0
    recoverable: bool = False
    epoch: str = ""
    publications: list[Publication] | None = None
    recovered: bool = False
    offset: int = 0
    positioned: bool = False
    data: Raw = EMPTY
    was_recovering: bool = False
    #: Delta compression was negotiated: publications may carry deltas.
    delta: bool = False
    #: Map subscriptions: the type echoed, the phase answered, the next state page.
    type: int = 0
    phase: int = 0
    cursor: str = ""
    state: list[Publication] | None = None


class ConnectResult(_Message):
    client: str = ""
    version: str = ""
    expires: bool = False
    ttl: int = 0
    data: Raw = EMPTY
    subs: dict[str, SubscribeResult] | None = None
    ping: int = 0
    pong: bool = False
    session: str = ""
    node: str = ""
    time: int = 0


class UnsubscribeResult(_Message):
    pass


class PublishResult(_Message):
    pass


# Results whose every field Centrifugo writes, zero or not (SDKs read them as given).


class PresenceResult(Struct):
    presence: dict[str, ClientInfo] = field(default_factory=dict)


class PresenceStatsResult(Struct):
    num_clients: int = 0
    num_users: int = 0


class HistoryResult(Struct):
    publications: list[Publication] = field(default_factory=list)
    epoch: str = ""
    offset: int = 0


class PingResult(_Message):
    pass


class RPCResult(_Message):
    data: Raw = EMPTY


class RefreshResult(_Message):
    client: str = ""
    version: str = ""
    expires: bool = False
    ttl: int = 0


class SubRefreshResult(_Message):
    expires: bool = False
    ttl: int = 0
    #: Track replies: the current data of keys the client has an older version of.
    items: list[Publication] | None = None


class Join(_Message):
    info: ClientInfo | None = None


class Leave(_Message):
    info: ClientInfo | None = None


class Unsubscribe(_Message):
    code: int = 0
    reason: str = ""


class Subscribe(_Message):
    recoverable: bool = False
    epoch: str = ""
    offset: int = 0
    positioned: bool = False
    data: Raw = EMPTY


class Message(_Message):
    data: Raw = EMPTY


class Connect(_Message):
    client: str = ""
    version: str = ""
    data: Raw = EMPTY
    subs: dict[str, SubscribeResult] | None = None
    expires: bool = False
    ttl: int = 0
    ping: int = 0
    pong: bool = False
    session: str = ""
    node: str = ""
    time: int = 0


class DisconnectPush(_Message):
    code: int = 0
    reason: str = ""


class Refresh(_Message):
    expires: bool = False
    ttl: int = 0


class Push(_Message):
    channel: str = ""
    pub: Publication | None = None
    join: Join | None = None
    leave: Leave | None = None
    unsubscribe: Unsubscribe | None = None
    message: Message | None = None
    subscribe: Subscribe | None = None
    connect: Connect | None = None
    disconnect: DisconnectPush | None = None
    refresh: Refresh | None = None


class Reply(_Message):
    """A reply to command `id`, or (id 0) a push, or (empty) a server ping."""

    id: int = 0
    error: Error | None = None
    push: Push | None = None
    connect: ConnectResult | None = None
    subscribe: SubscribeResult | None = None
    unsubscribe: UnsubscribeResult | None = None
    publish: PublishResult | None = None
    presence: PresenceResult | None = None
    presence_stats: PresenceStatsResult | None = None
    history: HistoryResult | None = None
    ping: PingResult | None = None
    rpc: RPCResult | None = None
    refresh: RefreshResult | None = None
    sub_refresh: SubRefreshResult | None = None
