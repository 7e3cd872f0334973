"""The proxies' HTTP client: bounded concurrency, timeouts, and what it accepts as an answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.upstream.backend import Backend
from tidings.upstream import proxy_messages as pm
from tidings.upstream.proxy import MAX_RESPONSE_SIZE, CallSlots, ProxyClient, ProxyUnavailable
from tidings.upstream.proxy_config import ProxyEndpoint

REQUEST = pm.RPCRequest(client="c", transport="websocket", protocol="json", encoding="json")


@pytest.fixture
async def http() -> AsyncIterator[ProxyClient]:
    client = ProxyClient(max_concurrent=4, max_waiting=10)
    yield client
    await client.close()


def endpoint(backend: Backend, timeout: float = 5.0, **options: object) -> ProxyEndpoint:
    return ProxyEndpoint(endpoint=backend.url("rpc"), timeout=timeout, **options)  # type: ignore[arg-type]


async def test_flood_never_exceeds_the_limit_and_the_rest_is_refused(
    http: ProxyClient, backend: Backend
) -> None:
    backend.answer("rpc", {"result": {"data": 1}}, delay=0.2)
    target = endpoint(backend)
    calls = [http.call("rpc", target, REQUEST, pm.RPCResponse) for _ in range(50)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    done = [r for r in results if isinstance(r, pm.RPCResponse)]
    refused = [r for r in results if isinstance(r, ProxyUnavailable)]
    # 4 run at once, 10 wait in line, the other 36 are refused without reaching the back end.
    assert (len(done), len(refused)) == (14, 36)
    assert {r.reason for r in refused} == {"busy"}
    assert backend.peak == 4
    assert len(backend.of("rpc")) == 14
    assert http.slots.in_flight == 0 and http.slots.waiting == 0
    assert http.failures[("rpc", "busy")] == 36


async def test_a_call_waiting_in_line_gives_up_at_its_timeout(
    http: ProxyClient, backend: Backend
) -> None:
    backend.answer("rpc", {"result": {}}, delay=1.0)
    slow = [http.call("rpc", endpoint(backend), REQUEST, pm.RPCResponse) for _ in range(4)]
    running = asyncio.gather(*slow)
    await asyncio.sleep(0.05)
    with pytest.raises(ProxyUnavailable) as caught:
        await http.call("rpc", endpoint(backend, timeout=0.1), REQUEST, pm.RPCResponse)
    assert caught.value.reason == "timeout"
    assert http.slots.waiting == 0  # it left the line
    await running
    assert http.slots.in_flight == 0


async def test_slots_pass_on_in_order() -> None:
    slots = CallSlots(1, 5)
    await slots.acquire()
    order: list[int] = []

    async def worker(n: int) -> None:
        await slots.acquire()
        order.append(n)
        await asyncio.sleep(0)
        slots.release()

    tasks = [asyncio.create_task(worker(n)) for n in range(3)]
    await asyncio.sleep(0)
    tasks[1].cancel()  # leaves the line without taking a slot
    slots.release()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == [0, 2]
    assert (slots.in_flight, slots.waiting, slots.peak) == (0, 0, 1)


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"not json", 200, "garbage"),
        (b'{"result": {"data": 1}', 200, "garbage"),  # cut short
        (b'{"result": {"data": "\xc3\x28"}}', 200, "garbage"),  # invalid UTF-8
        (b'{"result": {"data": {"x": "\xff"}}}', 200, "garbage"),  # invalid UTF-8 in a payload
        (b'{"error": {"code": 99999999999}}', 200, "garbage"),  # beyond uint32
        (b'{"result": {}}', 404, "status"),
        (b'{"result": {}}', 204, "status"),
    ],
)
async def test_unusable_answers(
    http: ProxyClient, backend: Backend, body: bytes, status: int, reason: str
) -> None:
    backend.answer("rpc", body, status=status)
    with pytest.raises(ProxyUnavailable) as caught:
        await http.call("rpc", endpoint(backend), REQUEST, pm.RPCResponse)
    assert caught.value.reason == reason
    assert http.failures[("rpc", reason)] == 1


async def test_oversized_answer_is_refused(http: ProxyClient, backend: Backend) -> None:
    huge = b'{"result": {"data": "' + b"x" * MAX_RESPONSE_SIZE + b'"}}'
    backend.answer("rpc", huge)
    with pytest.raises(ProxyUnavailable) as caught:
        await http.call("rpc", endpoint(backend), REQUEST, pm.RPCResponse)
    assert caught.value.reason == "garbage"


async def test_back_end_down(http: ProxyClient) -> None:
    target = ProxyEndpoint(endpoint="http://127.0.0.1:1/rpc", timeout=2.0)
    with pytest.raises(ProxyUnavailable) as caught:
        await http.call("rpc", target, REQUEST, pm.RPCResponse)
    assert caught.value.reason == "unreachable"


async def test_connections_are_kept_alive_and_cookies_never_replayed(
    http: ProxyClient, backend: Backend
) -> None:
    target = endpoint(backend, http_headers=["Cookie"], static_headers={"X-Static": "1"})
    await http.call("rpc", target, REQUEST, pm.RPCResponse, {"cookie": "session=alice"})
    await http.call("rpc", target, REQUEST, pm.RPCResponse, {})
    first, second = backend.of("rpc")
    assert first.headers["Cookie"] == "session=alice"
    assert "Cookie" not in second.headers  # the first user's cookie is not reused
    assert second.headers["X-Static"] == "1"
    assert http.latency.by_key["rpc"].count == 2
