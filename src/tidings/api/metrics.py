"""Prometheus metrics at `GET /metrics` on the API port.

Each node has its own `CollectorRegistry` (several nodes may share a process
in tests), filled at scrape time by `NodeCollector` from the counters the node
keeps anyway (`node.counters`, `node.traffic`, the hub's sizes, the proxies'
client): nothing on the message path calls into prometheus_client.

Like Centrifugo's, the endpoint needs no API key: the API port listens on
loopback unless configured otherwise, and the numbers carry no user data
(labels are method names, codes and proxy types, never users or channels).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from tidings import __version__
from tidings.core.latency import LatencyHistogram, LatencyTable
from tidings.core.node import Node

PREFIX = "tidings"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiTimings:
    """Latency and outcome of server API calls, by method."""

    def __init__(self) -> None:
        self.latency = LatencyTable()
        self.calls: dict[tuple[str, str], int] = {}

    def observe(self, method: str, status: int, seconds: float) -> None:
        self.latency.observe(method, seconds)
        key = (method, str(status))
        self.calls[key] = self.calls.get(key, 0) + 1


class NodeCollector(Collector):
    """Reads a node's counters into metric families when Prometheus scrapes."""

    def __init__(self, node: Node, api: ApiTimings) -> None:
        self.node = node
        self.api = api

    def collect(self) -> Iterator[Metric]:
        yield from self._clients()
        yield from self._messages()
        yield from self._api()
        yield from self._proxy()
        yield from _histograms(
            "store_operation_duration_seconds",
            "History store operations, by operation",
            "operation",
            self.node.traffic.store_latency,
        )
        yield from self._events()

    def _clients(self) -> Iterator[Metric]:
        node, hub = self.node, self.node.hub
        info = GaugeMetricFamily(
            f"{PREFIX}_node_info", "This node", labels=["uid", "name", "version"]
        )
        info.add_metric([node.uid, node.name, __version__], 1)
        yield info
        yield _gauge("node_start_time_seconds", "When the node started", node.started_at)
        yield _gauge("client_connections", "Connected clients", hub.num_clients)
        yield _gauge("client_users", "Distinct users connected", hub.num_users)
        yield _gauge("client_subscriptions", "Client subscriptions", hub.num_subs)
        yield _gauge("channels", "Channels with subscribers", hub.num_channels)
        yield _counter("client_connects", "Successful connects", node.counters["connects"])
        yield _counter(
            "client_closes", "Connections closed after connect", node.counters["disconnects"]
        )
        codes = CounterMetricFamily(
            f"{PREFIX}_client_disconnects", "Server-side disconnects, by code", labels=["code"]
        )
        for code, count in sorted(node.traffic.disconnects.items()):
            codes.add_metric([str(code)], count)
        yield codes
        commands = CounterMetricFamily(
            f"{PREFIX}_client_commands", "Client commands, by method", labels=["method"]
        )
        for method, count in sorted(node.traffic.commands.items()):
            commands.add_metric([method], count)
        yield commands
        errors = CounterMetricFamily(
            f"{PREFIX}_client_command_errors",
            "Errors answered to commands, by code",
            labels=["code"],
        )
        for code, count in sorted(node.traffic.errors.items()):
            errors.add_metric([str(code)], count)
        yield errors
        refused = CounterMetricFamily(
            f"{PREFIX}_client_refused", "Refusals by a limit, by reason", labels=["reason"]
        )
        for reason, count in sorted(node.refusals().items()):
            refused.add_metric([reason], count)
        yield refused
        yield _counter(
            "client_outbox_drops",
            "Clients dropped because their outbox was full (disconnected as slow, 3008)",
            node.counters["disconnected_slow"],
        )

    def _messages(self) -> Iterator[Metric]:
        node, traffic = self.node, self.node.traffic
        yield _counter(
            "publications", "Publications accepted (API and clients)", node.counters["publications"]
        )
        yield _counter("deliveries", "Publications queued for subscribers", traffic.deliveries)
        yield _counter("client_received_bytes", "Bytes received from clients", traffic.bytes_in)
        sent = traffic.bytes_out + node.batches.bytes_out
        yield _counter("client_sent_bytes", "Bytes written to clients", sent)

    def _api(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            f"{PREFIX}_api_requests",
            "Server API requests, by method and status",
            labels=["method", "status"],
        )
        for (method, status), count in sorted(self.api.calls.items()):
            calls.add_metric([method, status], count)
        yield calls
        yield from _histograms(
            "api_request_duration_seconds",
            "Server API requests, by method",
            "method",
            self.api.latency,
        )

    def _proxy(self) -> Iterator[Metric]:
        http = self.node.upstream.http
        calls = CounterMetricFamily(
            f"{PREFIX}_proxy_requests", "Proxy requests to the back end, by type", labels=["type"]
        )
        for kind, count in sorted(http.calls.items()):
            calls.add_metric([kind], count)
        yield calls
        errors = CounterMetricFamily(
            f"{PREFIX}_proxy_errors",
            "Proxy requests without a usable answer, by type and reason",
            labels=["type", "reason"],
        )
        for (kind, reason), count in sorted(http.failures.items()):
            errors.add_metric([kind, reason], count)
        yield errors
        yield from _histograms(
            "proxy_request_duration_seconds", "Proxy requests, by type", "type", http.latency
        )
        yield _gauge("proxy_in_flight", "Proxy requests running", http.slots.in_flight)
        yield _gauge("proxy_waiting", "Proxy requests waiting for a slot", http.slots.waiting)

    def _events(self) -> Iterator[Metric]:
        node = self.node
        dropped = CounterMetricFamily(
            f"{PREFIX}_events_dropped",
            "Node events dropped (a queue was full), by type",
            labels=["type"],
        )
        for kind, count in sorted(node.events.dropped.items()):
            dropped.add_metric([kind], count)
        yield dropped
        if node.user_events is not None:
            yield _counter("user_events_sent", "User events POSTed", node.user_events.sent)
            yield _counter(
                "user_events_failures", "Failed user event POSTs", node.user_events.failures
            )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, value=value)


def _histograms(name: str, doc: str, label: str, table: LatencyTable) -> Iterator[Metric]:
    family = HistogramMetricFamily(f"{PREFIX}_{name}", doc, labels=[label])
    for key, histogram in sorted(table.by_key.items()):
        family.add_metric([key], _buckets(histogram), sum_value=histogram.sum)
    yield family


def _buckets(histogram: LatencyHistogram) -> list[tuple[str, float]]:
    return [(bound, float(count)) for bound, count in histogram.cumulative()]


class Metrics:
    """The registry of one node and the aiohttp pieces that feed and serve it."""

    def __init__(self, node: Node) -> None:
        self.api = ApiTimings()
        self._methods: frozenset[str] = frozenset()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(node, self.api))
        self.registry.register(ProcessCollector(registry=None))

    def install(self, app: web.Application, methods: Iterable[str]) -> None:
        """Serve `GET /metrics` and time `/api` calls to `methods` on the API application."""
        # Other names are labelled "unknown": a caller must not be able to create labels.
        self._methods = frozenset(methods)
        app.router.add_get("/metrics", self._serve)
        app.middlewares.append(self._time_api)

    async def _serve(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    @web.middleware
    async def _time_api(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api"):
            return await handler(request)
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            method = request.match_info.get("method", "legacy")
            if method not in self._methods and method != "legacy":
                method = "unknown"
            self.api.observe(method, status, time.perf_counter() - started)
