"""The back end of shared poll channels: one HTTP request per channel per refresh.

The request and response are Centrifugo v6's shared poll refresh proxy
(`proxyproto.SharedPollRefreshRequest` / `...Response`, JSON over HTTP POST):

    -> {"channel": "quotes", "items": [{"key": "AAPL", "version": 3}, ...]}
    <- {"result": {"items": [{"key": "AAPL", "data": {...}, "version": 4},
                             {"key": "GONE", "removed": true}],
                   "epoch": "..."}}
    <- {"error": {"code": 1000, "message": "..."}}

A response is read up to `max_bytes` and decoded into typed structs: a back
end that is down, slow, answers garbage or too much raises `BackendError`
with a message saying which, and nothing else.
"""

from __future__ import annotations

import asyncio

import aiohttp
import msgspec
from msgspec import Raw, Struct

#: The largest back end response read, in bytes (more is refused, not buffered).
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


class BackendError(Exception):
    """The back end gave no usable answer (the message says why)."""


class PollItem(Struct, omit_defaults=True):
    key: str
    version: int = 0


class PollRequest(Struct, omit_defaults=True):
    channel: str
    items: list[PollItem]


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


_decode = msgspec.json.Decoder(PollResponse).decode
_encode = msgspec.json.Encoder().encode


class SharedPollBackend:
    """POSTs refresh requests to one endpoint (one aiohttp session, made on first use)."""

    def __init__(
        self, endpoint: str, *, timeout: float = 5.0, max_bytes: int = MAX_RESPONSE_BYTES
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._session: aiohttp.ClientSession | None = None

    async def refresh(self, channel: str, items: list[PollItem]) -> PollResult:
        """The back end's answer for `items` of `channel`; `BackendError` if there is none."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        body = _encode(PollRequest(channel=channel, items=items))
        headers = {"Content-Type": "application/json"}
        try:
            async with self._session.post(self.endpoint, data=body, headers=headers) as resp:
                if resp.status != 200:
                    raise BackendError(f"{self.endpoint} answered HTTP {resp.status}")
                chunks: list[bytes] = []
                size = 0
                while chunk := await resp.content.read(65536):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise BackendError(
                            f"{self.endpoint} answered more than {self.max_bytes} bytes"
                        )
                    chunks.append(chunk)
                data = b"".join(chunks)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            what = "timed out" if isinstance(exc, asyncio.TimeoutError) else str(exc)
            raise BackendError(
                f"{self.endpoint} unreachable: {what or type(exc).__name__}"
            ) from None
        try:
            response = _decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BackendError(f"{self.endpoint} answered an invalid response: {exc}") from None
        if response.error is not None:
            raise BackendError(
                f"{self.endpoint} answered error {response.error.code}: {response.error.message}"
            )
        return response.result or PollResult()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
