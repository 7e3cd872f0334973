"""The back end of shared poll channels: one HTTP request per channel per refresh.

The request and response are Centrifugo v6's shared poll refresh proxy
(`proxyproto.SharedPollRefreshRequest` / `...Response`, JSON over HTTP POST):

    -> {"channel": "quotes", "items": [{"key": "AAPL", "version": 3}, ...]}
    <- {"result": {"items": [{"key": "AAPL", "data": {...}, "version": 4},
                             {"key": "GONE", "removed": true}],
                   "epoch": "..."}}
    <- {"error": {"code": 1000, "message": "..."}}

Calls go through the node's proxy HTTP client (`tidings.upstream.proxy`):
its call slots, timeout and response bound (`MAX_RESPONSE_SIZE`) apply. A
back end that is down, slow, answers garbage, an error or too much raises
`BackendError` saying which, and nothing else.
"""

from __future__ import annotations

from msgspec import Raw, Struct

from tidings.upstream.proxy import ProxyClient, ProxyUnavailable
from tidings.upstream.proxy_config import ProxyEndpoint
from tidings.upstream.proxy_messages import SharedPollRefreshItem as PollItem
from tidings.upstream.proxy_messages import SharedPollRefreshRequest

__all__ = ["BackendError", "PollItem", "PollResult", "PolledItem", "SharedPollBackend"]


class BackendError(Exception):
    """The back end gave no usable answer (the message says why)."""


class PolledItem(Struct):
    key: str
    data: Raw = Raw()
    version: int = 0
    removed: bool = False


class PollResult(Struct):
    items: list[PolledItem] = []
    epoch: str = ""


class PollError(Struct):
    code: int = 0
    message: str = ""


class PollResponse(Struct):
    result: PollResult | None = None
    error: PollError | None = None


class SharedPollBackend:
    """Refresh requests to one endpoint, through the node's proxy client."""

    def __init__(self, http: ProxyClient, endpoint: str, *, timeout: float = 5.0) -> None:
        self.http = http
        self.endpoint = ProxyEndpoint(endpoint=endpoint, timeout=timeout)

    async def refresh(self, channel: str, items: list[PollItem]) -> PollResult:
        """The back end's answer for `items` of `channel`; `BackendError` if there is none."""
        request = SharedPollRefreshRequest(channel=channel, items=items)
        url = self.endpoint.endpoint
        try:
            response = await self.http.call(
                "shared_poll_refresh", self.endpoint, request, PollResponse
            )
        except ProxyUnavailable as exc:
            raise BackendError(f"{url}: {exc}") from None
        if response.error is not None:
            error = response.error
            raise BackendError(f"{url} answered error {error.code}: {error.message}")
        return response.result or PollResult()
