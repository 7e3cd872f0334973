"""The server API method of shared poll channels: `shared_poll_publish` (Centrifugo v6).

    {"channel": "quotes:nyse", "key": "AAPL", "version": 7, "data": {"price": 101}}
    -> {"result": {}}

The update reaches the trackers of the key on every node, unless they already
have that version or a newer one (see `tidings.core.shared_poll`). Errors are
Centrifugo's: 107 without channel, key or version, or on a channel that is not
a shared poll channel; 102 for an unknown namespace; 108 unless the namespace
sets `shared_poll_publish_enabled`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from msgspec import Raw, Struct

from tidings.api.payloads import optional_payload
from tidings.core.commands import checked_payload
from tidings.core.shared_poll import SharedPolls
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode

Result = dict[str, Any]


class SharedPollPublishRequest(Struct, forbid_unknown_fields=True, omit_defaults=True):
    channel: str
    key: str
    data: Raw = Raw()
    b64data: str = ""
    version: int = 0
    #: The publisher's epoch: when it changes, trackers start over (see `SharedPolls`).
    epoch: str = ""


class SharedPollApi:
    """`shared_poll_publish` against a node's `SharedPolls`."""

    def __init__(self, polls: SharedPolls) -> None:
        self.polls = polls

    def methods(self) -> dict[str, tuple[type[Any], Callable[[Any], Awaitable[Result]]]]:
        return {"shared_poll_publish": (SharedPollPublishRequest, self.shared_poll_publish)}

    async def shared_poll_publish(self, req: SharedPollPublishRequest) -> Result:
        if not req.channel or not req.key or not req.version:
            raise ReplyError(ErrorCode.BAD_REQUEST, "channel, key and version required")
        payload = optional_payload(req.data, req.b64data, "b64data")
        data = bytes(checked_payload(payload, "data")) if len(payload) else b""
        await self.polls.publish(req.channel, req.key, req.version, data, req.epoch)
        return {}
