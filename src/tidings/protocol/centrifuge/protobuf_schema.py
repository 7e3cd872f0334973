"""Field numbers and wire kinds of every Centrifuge v2 message, from `client.proto`.

The protobuf codec is generic: it walks this table. Each Struct of
`messages.py` maps its attribute names to `(field number, kind)`, as
declared in `definitions/client.proto` of centrifugal/protocol. A kind is
a scalar name below, a Struct type (an embedded message), `Repeated(T)` or
`MapOf(V)` (a `map<string, V>`). Fields of the proto that tidings does not
model are left out: the decoder skips them like any unknown field.
"""

from __future__ import annotations

from dataclasses import dataclass

from msgspec import Struct

from tidings.protocol.centrifuge import messages as m

# Scalar kinds. All varints except STRING and BYTES (length-delimited).
UINT32 = "uint32"
UINT64 = "uint64"
INT32 = "int32"
INT64 = "int64"
BOOL = "bool"
STRING = "string"
#: Opaque bytes; a `msgspec.Raw` attribute (the JSON encoding's raw payload).
BYTES = "bytes"


@dataclass(frozen=True, slots=True)
class Repeated:
    """`repeated T` of an embedded message (or of STRING): a list attribute."""

    item: type[Struct] | str


@dataclass(frozen=True, slots=True)
class MapOf:
    """`map<string, V>`: a dict attribute; V is STRING or an embedded message."""

    value: str | type[Struct]


Kind = str | type[Struct] | Repeated | MapOf

#: Struct type -> {attribute: (field number, kind)}.
SCHEMA: dict[type[Struct], dict[str, tuple[int, Kind]]] = {
    # --- requests ---------------------------------------------------------------
    m.StreamPosition: {"offset": (1, UINT64), "epoch": (2, STRING)},
    m.FilterNode: {
        "op": (1, STRING),
        "key": (2, STRING),
        "cmp": (3, STRING),
        "val": (4, STRING),
        "vals": (5, Repeated(STRING)),
        "nodes": (6, Repeated(m.FilterNode)),
    },
    m.SubscribeRequest: {
        "channel": (1, STRING),
        "token": (2, STRING),
        "recover": (3, BOOL),
        "epoch": (6, STRING),
        "offset": (7, UINT64),
        "data": (8, BYTES),
        "positioned": (9, BOOL),
        "recoverable": (10, BOOL),
        "join_leave": (11, BOOL),
        "delta": (12, STRING),
        "tf": (13, BYTES),  # a FilterNode message, kept as its bytes
        "flag": (14, INT64),
        "type": (15, INT32),
        "phase": (16, INT32),
        "cursor": (17, STRING),
        "limit": (18, INT32),
        "asc": (19, BOOL),
    },
    m.ConnectRequest: {
        "token": (1, STRING),
        "data": (2, BYTES),
        "subs": (3, MapOf(m.SubscribeRequest)),
        "name": (4, STRING),
        "version": (5, STRING),
        "headers": (6, MapOf(STRING)),
    },
    m.UnsubscribeRequest: {"channel": (1, STRING)},
    m.PublishRequest: {
        "channel": (1, STRING),
        "data": (2, BYTES),
        "type": (3, INT32),
        "key": (4, STRING),
        "removed": (5, BOOL),
    },
    m.PresenceRequest: {"channel": (1, STRING)},
    m.PresenceStatsRequest: {"channel": (1, STRING)},
    m.HistoryRequest: {
        "channel": (1, STRING),
        "limit": (7, INT32),
        "since": (8, m.StreamPosition),
        "reverse": (9, BOOL),
    },
    m.PingRequest: {},
    m.SendRequest: {"data": (1, BYTES)},
    m.RPCRequest: {"data": (1, BYTES), "method": (2, STRING)},
    m.RefreshRequest: {"token": (1, STRING)},
    m.KeyedItem: {"key": (1, STRING), "version": (2, UINT64)},
    m.TrackBatch: {"signature": (1, STRING), "items": (2, Repeated(m.KeyedItem))},
    m.SubRefreshRequest: {
        "channel": (1, STRING),
        "token": (2, STRING),
        "type": (3, INT32),
        "track": (4, Repeated(m.TrackBatch)),
        "untrack": (5, Repeated(STRING)),
    },
    m.Command: {
        "id": (1, UINT32),
        "connect": (4, m.ConnectRequest),
        "subscribe": (5, m.SubscribeRequest),
        "unsubscribe": (6, m.UnsubscribeRequest),
        "publish": (7, m.PublishRequest),
        "presence": (8, m.PresenceRequest),
        "presence_stats": (9, m.PresenceStatsRequest),
        "history": (10, m.HistoryRequest),
        "ping": (11, m.PingRequest),
        "send": (12, m.SendRequest),
        "rpc": (13, m.RPCRequest),
        "refresh": (14, m.RefreshRequest),
        "sub_refresh": (15, m.SubRefreshRequest),
    },
    # --- results and pushes -----------------------------------------------------
    m.Error: {"code": (1, UINT32), "message": (2, STRING), "temporary": (3, BOOL)},
    m.ClientInfo: {
        "user": (1, STRING),
        "client": (2, STRING),
        "conn_info": (3, BYTES),
        "chan_info": (4, BYTES),
    },
    m.Publication: {
        "data": (4, BYTES),
        "info": (5, m.ClientInfo),
        "offset": (6, UINT64),
        "tags": (7, MapOf(STRING)),
        "delta": (8, BOOL),
        "time": (9, INT64),
        "key": (11, STRING),
        "removed": (12, BOOL),
        "epoch": (14, STRING),
        "version": (16, UINT64),
    },
    m.SubscribeResult: {
        "expires": (1, BOOL),
        "ttl": (2, UINT32),
        "recoverable": (3, BOOL),
        "epoch": (6, STRING),
        "publications": (7, Repeated(m.Publication)),
        "recovered": (8, BOOL),
        "offset": (9, UINT64),
        "positioned": (10, BOOL),
        "data": (11, BYTES),
        "was_recovering": (12, BOOL),
        "delta": (13, BOOL),
        "type": (15, INT32),
        "phase": (16, INT32),
        "cursor": (17, STRING),
        "state": (18, Repeated(m.Publication)),
    },
    m.ConnectResult: {
        "client": (1, STRING),
        "version": (2, STRING),
        "expires": (3, BOOL),
        "ttl": (4, UINT32),
        "data": (5, BYTES),
        "subs": (6, MapOf(m.SubscribeResult)),
        "ping": (7, UINT32),
        "pong": (8, BOOL),
        "session": (9, STRING),
        "node": (10, STRING),
        "time": (11, INT64),
    },
    m.UnsubscribeResult: {},
    m.PublishResult: {},
    m.PresenceResult: {"presence": (1, MapOf(m.ClientInfo))},
    m.PresenceStatsResult: {"num_clients": (1, UINT32), "num_users": (2, UINT32)},
    m.HistoryResult: {
        "publications": (1, Repeated(m.Publication)),
        "epoch": (2, STRING),
        "offset": (3, UINT64),
    },
    m.PingResult: {},
    m.RPCResult: {"data": (1, BYTES)},
    m.RefreshResult: {
        "client": (1, STRING),
        "version": (2, STRING),
        "expires": (3, BOOL),
        "ttl": (4, UINT32),
    },
    m.SubRefreshResult: {
        "expires": (1, BOOL),
        "ttl": (2, UINT32),
        "items": (3, Repeated(m.Publication)),
    },
    m.Join: {"info": (1, m.ClientInfo)},
    m.Leave: {"info": (1, m.ClientInfo)},
    m.Unsubscribe: {"code": (2, UINT32), "reason": (3, STRING)},
    m.Subscribe: {
        "recoverable": (1, BOOL),
        "epoch": (4, STRING),
        "offset": (5, UINT64),
        "positioned": (6, BOOL),
        "data": (7, BYTES),
    },
    m.Message: {"data": (1, BYTES)},
    m.Connect: {
        "client": (1, STRING),
        "version": (2, STRING),
        "data": (3, BYTES),
        "subs": (4, MapOf(m.SubscribeResult)),
        "expires": (5, BOOL),
        "ttl": (6, UINT32),
        "ping": (7, UINT32),
        "pong": (8, BOOL),
        "session": (9, STRING),
        "node": (10, STRING),
        "time": (11, INT64),
    },
    m.DisconnectPush: {"code": (1, UINT32), "reason": (2, STRING)},
    m.Refresh: {"expires": (1, BOOL), "ttl": (2, UINT32)},
    m.Push: {
        "channel": (2, STRING),
        "pub": (4, m.Publication),
        "join": (5, m.Join),
        "leave": (6, m.Leave),
        "unsubscribe": (7, m.Unsubscribe),
        "message": (8, m.Message),
        "subscribe": (9, m.Subscribe),
        "connect": (10, m.Connect),
        "disconnect": (11, m.DisconnectPush),
        "refresh": (12, m.Refresh),
    },
    m.Reply: {
        "id": (1, UINT32),
        "error": (2, m.Error),
        "push": (4, m.Push),
        "connect": (5, m.ConnectResult),
        "subscribe": (6, m.SubscribeResult),
        "unsubscribe": (7, m.UnsubscribeResult),
        "publish": (8, m.PublishResult),
        "presence": (9, m.PresenceResult),
        "presence_stats": (10, m.PresenceStatsResult),
        "history": (11, m.HistoryResult),
        "ping": (12, m.PingResult),
        "rpc": (13, m.RPCResult),
        "refresh": (14, m.RefreshResult),
        "sub_refresh": (15, m.SubRefreshResult),
    },
}
