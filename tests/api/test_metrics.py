"""`GET /metrics`: a scripted session on a real node, scraped over HTTP and parsed.

Counters are compared between two scrapes, so each assertion states how much
one step of the session must move them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.core.conftest import Conn, make_settings
from tidings.api.metrics import Metrics
from tidings.api.server import ApiServer
from tidings.core.node import Node

KEY = "metrics-test-key"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Api:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.server = ApiServer(node, KEY)
        self.metrics = Metrics(node)
        self.metrics.install(self.server.app, self.server.api.method_names)
        self.runner = web.AppRunner(self.server.app)
        self.url = ""

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def call(self, method: str, body: dict[str, Any], key: str = KEY) -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.url}/api/{method}", json=body, headers={"X-API-Key": key}) as r,
        ):
            await r.read()
            return r.status

    async def scrape(self) -> Samples:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/metrics") as r:
            assert r.status == 200  # no API key needed
            assert r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
        samples: Samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    created = Node(make_settings(namespaces={"closed": {}}))
    yield created
    await created.stop()


@pytest.fixture
async def api(node: Node) -> AsyncIterator[Api]:
    server = Api(node)
    await server.start()
    yield server
    await server.runner.cleanup()


def value(samples: Samples, metric: str, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, metric: str, **labels: str) -> float:
    return value(after, metric, **labels) - value(before, metric, **labels)


async def test_a_scripted_session_moves_the_counters(node: Node, api: Api) -> None:
    before = await api.scrape()
    alice, bob = Conn(node), Conn(node)
    await alice.connect("alice")
    await bob.connect("bob")
    await alice.subscribe("news")
    await bob.subscribe("news", cid=2)
    denied = await bob.call({"id": 3, "subscribe": {"channel": "closed:x"}})
    assert denied["error"]["code"] == 103
    for n in range(3):
        assert await api.call("publish", {"channel": "news", "data": {"n": n}}) == 200
    assert await api.call("publish", {"channel": "news"}, key="wrong") == 401
    unknown_status = await api.call("no_such_method", {})
    assert await api.call("disconnect", {"user": "bob"}) == 200
    await alice.send({"id": 9, "ping": {}})
    after = await api.scrape()

    assert value(after, "tidings_client_connections") == 1
    assert value(after, "tidings_client_users") == 1
    assert value(after, "tidings_client_subscriptions") == 1
    assert moved(before, after, "tidings_client_connects_total") == 2
    assert moved(before, after, "tidings_client_disconnects_total", code="3503") == 1
    assert moved(before, after, "tidings_client_commands_total", method="connect") == 2
    assert moved(before, after, "tidings_client_commands_total", method="subscribe") == 3
    assert moved(before, after, "tidings_client_commands_total", method="ping") == 1
    assert moved(before, after, "tidings_client_command_errors_total", code="103") == 1
    assert moved(before, after, "tidings_publications_total") == 3
    assert moved(before, after, "tidings_deliveries_total") == 6  # 3 x 2 subscribers
    assert moved(before, after, "tidings_client_received_bytes_total") > 0
    assert moved(before, after, "tidings_client_sent_bytes_total") > 0
    ok = moved(before, after, "tidings_api_requests_total", method="publish", status="200")
    assert ok == 3
    assert moved(before, after, "tidings_api_requests_total", method="publish", status="401") == 1
    # A caller cannot invent label values: unknown methods share one label.
    assert (
        moved(
            before,
            after,
            "tidings_api_requests_total",
            method="unknown",
            status=str(unknown_status),
        )
        == 1
    )
    assert moved(before, after, "tidings_api_request_duration_seconds_count", method="publish") == 4
    assert (
        value(after, "tidings_api_request_duration_seconds_bucket", method="publish", le="+Inf")
        == 4
    )
    assert value(after, "tidings_node_info", uid=node.uid, name=node.name, version="0.1.0") == 1
    assert value(after, "process_cpu_seconds_total") > 0


async def test_proxy_and_outbox_metrics_are_there_before_any_traffic(api: Api) -> None:
    samples = await api.scrape()
    names = {name for name, _ in samples}
    assert "tidings_proxy_in_flight" in names
    assert "tidings_client_outbox_drops_total" in names


async def test_each_node_has_its_own_registry() -> None:
    first = Node(make_settings())
    second = Node(
        make_settings(
            channel={"history_size": 5, "history_ttl": "1m", "allow_subscribe_for_client": True}
        )
    )
    try:
        a, b = Api(first), Api(second)
        await a.start()
        await b.start()
        conn = Conn(second)
        await conn.connect("carol")
        await conn.subscribe("news")
        await b.call("publish", {"channel": "news", "data": {}})
        assert value(await a.scrape(), "tidings_client_connections") == 0
        samples = await b.scrape()
        assert value(samples, "tidings_client_connections") == 1
        assert (
            value(samples, "tidings_store_operation_duration_seconds_count", operation="append")
            == 1
        )
        await a.runner.cleanup()
        await b.runner.cleanup()
    finally:
        await first.stop()
        await second.stop()
