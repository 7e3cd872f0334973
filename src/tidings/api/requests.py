"""Typed request bodies of the server API, one struct per method.

Unknown fields are refused with a message naming them, so a typo in a
request is an error instead of a silently ignored option.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Raw, Struct

#: An offset, count or time from the wire: a signed 64-bit value that is not negative
#: (what the stores can hold; anything else is error 107 naming the field).
Uint63 = Annotated[int, Meta(ge=0, le=2**63 - 1)]
#: A history limit: as Uint63, or -1 for every publication kept.
Limit = Annotated[int, Meta(ge=-1, le=2**63 - 1)]


class _Request(Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class StreamPosition(_Request):
    offset: Uint63 = 0
    epoch: str = ""


class DisconnectReason(_Request):
    code: int = 0
    reason: str = ""


class PublishRequest(_Request):
    channel: str
    data: Raw
    skip_history: bool = False
    tags: dict[str, str] | None = None
    b64data: str = ""
    idempotency_key: str = ""


class BroadcastRequest(_Request):
    channels: list[str]
    data: Raw
    skip_history: bool = False
    tags: dict[str, str] | None = None
    b64data: str = ""
    idempotency_key: str = ""


class SubscribeRequest(_Request):
    user: str
    channel: str
    info: Raw = Raw()
    b64info: str = ""
    client: str = ""
    session: str = ""
    data: Raw = Raw()
    b64data: str = ""
    recover_since: StreamPosition | None = None


class UnsubscribeRequest(_Request):
    user: str
    channel: str
    client: str = ""
    session: str = ""


class DisconnectRequest(_Request):
    user: str
    client: str = ""
    session: str = ""
    whitelist: list[str] | None = None
    disconnect: DisconnectReason | None = None


class RefreshRequest(_Request):
    user: str
    client: str = ""
    session: str = ""
    expired: bool = False
    expire_at: Uint63 = 0


class ChannelRequest(_Request):
    """presence, presence_stats and history_remove take just a channel."""

    channel: str


class HistoryRequest(_Request):
    channel: str
    limit: Limit = 0
    since: StreamPosition | None = None
    reverse: bool = False


class ChannelsRequest(_Request):
    pattern: str = ""


class InfoRequest(_Request):
    pass


class UserStatusRequest(_Request):
    users: list[str]


class UserConnectionsRequest(_Request):
    user: str


class BroadcastAllRequest(_Request):
    data: Raw
    rate: Annotated[float, Meta(ge=0.0, le=1e9)] = 0.0
    tags: dict[str, str] | None = None


class DeliveryStatusRequest(_Request):
    channel: str
    offset: Uint63 = 0
    idempotency_key: str = ""


class BatchRequest(_Request):
    commands: list[dict[str, Raw]]
    parallel: bool = False
