"""The HTTP client of the proxies: one keep-alive session, bounded calls, strict answers.

Every call is a POST of a JSON body to an endpoint, under the endpoint's
timeout, which also covers the wait for a free call slot: a call never takes
longer than its timeout, whatever the back end does. A node runs at most
`max_concurrent` calls at once and lets at most `max_waiting` wait; beyond
that a call is refused at once, so a slow back end cannot pile up work.

Anything but a 200 answer with a body that decodes into the expected
response is `ProxyUnavailable`; the caller turns it into Centrifugo's
temporary error 100 (or a retry, for refreshes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Mapping
from typing import TypeVar

import aiohttp
import msgspec

from tidings.core.latency import LatencyTable
from tidings.upstream.proxy_config import ProxyEndpoint, StatusTransform
from tidings.upstream.proxy_messages import ProxyRequest

log = logging.getLogger(__name__)

#: Largest answer accepted from a back end, bytes.
MAX_RESPONSE_SIZE = 4 * 1024 * 1024

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


class ProxyUnavailable(Exception):
    """The back end gave no usable answer. `reason` is a short metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        #: Already in the failure counters (set by `ProxyClient.failed`).
        self.counted = False


class CallSlots:
    """At most `limit` holders at once and at most `max_waiting` in line (FIFO)."""

    def __init__(self, limit: int, max_waiting: int) -> None:
        self.limit = limit
        self.max_waiting = max_waiting
        self.in_flight = 0
        self.peak = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        """Take a slot, waiting in line if needed; ProxyUnavailable('busy') if the line is full."""
        if self.in_flight < self.limit and not self._waiters:
            self._take()
            return
        if len(self._waiters) >= self.max_waiting:
            raise ProxyUnavailable("busy", f"{self.in_flight} calls running, line full")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as we gave up: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def _take(self) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def release(self) -> None:
        """Give the slot back, to the first in line if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: in_flight is unchanged
                return
        self.in_flight -= 1


class ProxyClient:
    """Posts proxy requests over one keep-alive aiohttp session (created on first use)."""

    def __init__(self, max_concurrent: int, max_waiting: int) -> None:
        self.slots = CallSlots(max_concurrent, max_waiting)
        self._session: aiohttp.ClientSession | None = None
        #: Calls by proxy type, failures by (proxy type, reason), latency by proxy type.
        self.calls: Counter[str] = Counter()
        self.failures: Counter[tuple[str, str]] = Counter()
        self.latency = LatencyTable()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                # Cookies a back end sets must never travel to another user's call.
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(
        self,
        kind: str,
        endpoint: ProxyEndpoint,
        request: ProxyRequest,
        response_type: type[T],
        client_headers: Mapping[str, str] | None = None,
        *,
        emulated_headers: Mapping[str, str] | None = None,
    ) -> T:
        """POST `request` to `endpoint` and decode the answer as `response_type`."""
        self.calls[kind] += 1
        started = time.monotonic()
        try:
            async with asyncio.timeout(endpoint.timeout):
                await self.slots.acquire()
                try:
                    body = await self._post(endpoint, request, client_headers, emulated_headers)
                finally:
                    self.slots.release()
            return _decode(body, response_type)
        except ProxyUnavailable as exc:
            self.failed(kind, endpoint, exc)
            raise
        except TimeoutError:
            slow = ProxyUnavailable("timeout", f"no answer within {endpoint.timeout}s")
            self.failed(kind, endpoint, slow)
            raise slow from None
        except (aiohttp.ClientError, OSError) as err:
            down = ProxyUnavailable("unreachable", f"{type(err).__name__}: {err}")
            self.failed(kind, endpoint, down)
            raise down from None
        finally:
            self.latency.observe(kind, time.monotonic() - started)

    def failed(self, kind: str, endpoint: ProxyEndpoint, exc: ProxyUnavailable) -> None:
        """Count and log a failure (once, however often it is reported)."""
        if exc.counted:
            return
        exc.counted = True
        self.failures[(kind, exc.reason)] += 1
        log.warning("%s proxy %s failed: %s", kind, endpoint.endpoint, exc)

    async def _post(
        self,
        endpoint: ProxyEndpoint,
        request: ProxyRequest,
        client_headers: Mapping[str, str] | None,
        emulated_headers: Mapping[str, str] | None = None,
    ) -> bytes:
        # Lowest to highest priority, as in Centrifugo: static, emulated, transport.
        headers = dict(endpoint.static_headers)
        if emulated_headers and endpoint.emulated_headers:
            for name in endpoint.emulated_headers:
                value = emulated_headers.get(name.lower())
                if value is not None:
                    headers[name] = value
        if client_headers and endpoint.http_headers:
            for name in endpoint.http_headers:
                value = client_headers.get(name.lower())
                if value is not None:
                    headers[name] = value
        headers["Content-Type"] = "application/json"
        async with self._http().post(
            endpoint.endpoint, data=_encoder.encode(request), headers=headers
        ) as response:
            if response.status != 200:
                for rule in endpoint.status_to_code_transforms:
                    if rule.status_code == response.status:
                        return _transformed(rule)
                raise ProxyUnavailable("status", f"HTTP {response.status}")
            if (response.content_length or 0) > MAX_RESPONSE_SIZE:
                raise ProxyUnavailable("garbage", f"answer of {response.content_length} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_any():
                size += len(chunk)
                if size > MAX_RESPONSE_SIZE:
                    raise ProxyUnavailable("garbage", f"answer over {MAX_RESPONSE_SIZE} bytes")
                chunks.append(chunk)
            return b"".join(chunks)


def _transformed(rule: StatusTransform) -> bytes:
    """The answer a transformed status stands for: `{"error": ...}` or `{"disconnect": ...}`."""
    if rule.to_error is not None:
        return _encoder.encode({"error": rule.to_error})
    return _encoder.encode({"disconnect": rule.to_disconnect})


def _decode(body: bytes, response_type: type[T]) -> T:
    try:
        # Raw payloads are passed on to clients as they are: the whole answer must be UTF-8.
        body.decode("utf-8")
        return msgspec.json.decode(body, type=response_type)
    except UnicodeDecodeError as exc:
        raise ProxyUnavailable("garbage", f"answer is not UTF-8: {exc}") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProxyUnavailable("garbage", f"unusable answer: {exc}") from None
