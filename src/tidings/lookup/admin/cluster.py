"""The queue cluster as the admin UI sees it: nodes from lookupds, stats from each node.

Everything goes through the public HTTP APIs of nsqlookupd (`/nodes`, `/topic/delete`,
`/channel/delete`) and nsqd (`/info`, `/stats?format=json`, `/topic/*`, `/channel/*`),
so the same UI serves real NSQ and tidings. The addresses called are only those
configured or announced by the configured lookupds, never ones taken from a request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp

from tidings.protocol.nsq.names import is_valid_name

ACTIONS = frozenset({"pause", "unpause", "empty", "delete"})
CHANNEL_COUNTERS = (
    "depth",
    "in_flight_count",
    "deferred_count",
    "message_count",
    "requeue_count",
    "timeout_count",
    "client_count",
)
#: Rates are recomputed at most this often, so that several open pages do not add noise.
RATE_WINDOW = 1.0


class AdminRequestError(ValueError):
    """A request the admin refuses before calling any node (bad name or action)."""


@dataclass(slots=True)
class RateMeter:
    """Messages per second from successive `message_count` readings, per key."""

    clock: Callable[[], float]
    _last: dict[tuple[str, ...], tuple[float, int, float]] = field(default_factory=dict)

    def rate(self, key: tuple[str, ...], count: int) -> float:
        now = self.clock()
        previous = self._last.get(key)
        if previous is None:
            self._last[key] = (now, count, 0.0)
            return 0.0
        then, before, rate = previous
        if now - then >= RATE_WINDOW:
            rate = max(0, count - before) / (now - then)
            self._last[key] = (now, count, rate)
        return rate


class QueueCluster:
    """Reads and acts on the queue nodes behind some lookupds and/or fixed nsqd addresses."""

    def __init__(
        self,
        lookupd_http: list[str],
        nsqd_http: list[str],
        *,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookupd_http = lookupd_http
        self.nsqd_http = nsqd_http
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._rates = RateMeter(clock)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, address: str, path: str) -> tuple[int, Any]:
        assert self._session is not None, "start() first"
        async with self._session.request(method, f"http://{address}{path}") as response:
            text = await response.text()
            try:
                return response.status, await response.json(content_type=None)
            except ValueError:
                return response.status, text

    async def nodes(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Queue nodes (lookupd `/nodes` entries, plus fixed nsqds) and the errors met."""
        found: dict[str, dict[str, Any]] = {}
        errors: list[str] = []
        for lookupd in self.lookupd_http:
            try:
                status, body = await self._call("GET", lookupd, "/nodes")
                if status != 200:
                    raise ValueError(f"HTTP {status}")
                for node in body["producers"]:
                    address = f"{node['broadcast_address']}:{node['http_port']}"
                    found.setdefault(address, {**node, "http_address": address})
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
                errors.append(f"lookupd {lookupd}: {exc or type(exc).__name__}")
        for address in self.nsqd_http:
            if address in found:
                continue
            try:
                status, info = await self._call("GET", address, "/info")
                found[address] = {**(info if status == 200 else {}), "http_address": address}
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors.append(f"nsqd {address}: {exc or type(exc).__name__}")
        return list(found.values()), errors

    async def overview(self) -> dict[str, Any]:
        """Nodes, and topics with their channels summed over the nodes, with rates."""
        nodes, errors = await self.nodes()
        stats = await asyncio.gather(*(self._stats(node["http_address"]) for node in nodes))
        topics: dict[str, dict[str, Any]] = {}
        for node, (node_stats, error) in zip(nodes, stats, strict=True):
            if error:
                errors.append(f"nsqd {node['http_address']}: {error}")
                node["error"] = error
                continue
            for topic in node_stats.get("topics") or []:
                _merge_topic(topics, topic, node["http_address"])
        for name, topic in topics.items():
            topic["rate"] = self._rates.rate(("topic", name), topic["message_count"])
            for channel in topic["channels"]:
                key = ("channel", name, channel["channel_name"])
                channel["rate"] = self._rates.rate(key, channel["message_count"])
        return {
            "nodes": nodes,
            "topics": [topics[name] for name in sorted(topics)],
            "errors": errors,
        }

    async def _stats(self, address: str) -> tuple[dict[str, Any], str]:
        try:
            status, body = await self._call("GET", address, "/stats?format=json")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return {}, str(exc) or type(exc).__name__
        if status != 200 or not isinstance(body, dict):
            return {}, f"HTTP {status}"
        return body, ""

    async def act(
        self, kind: str, action: str, topic: str, channel: str | None
    ) -> list[dict[str, Any]]:
        """Apply `action` to a topic or channel on every node that has it."""
        if kind not in ("topic", "channel") or action not in ACTIONS:
            raise AdminRequestError(f"unknown action {kind}/{action}")
        if not is_valid_name(topic) or (kind == "channel" and not is_valid_name(channel or "")):
            raise AdminRequestError("invalid topic or channel name")
        names = {"topic": topic, **({"channel": channel} if kind == "channel" else {})}
        query = "?" + urlencode(names)  # '#ephemeral' must not become a URL fragment
        overview = await self.overview()
        holders = [
            address
            for entry in overview["topics"]
            if entry["topic_name"] == topic
            for address in entry["nodes"]
        ]
        results = []
        for address in holders:
            results.append(await self._action(address, f"/{kind}/{action}{query}"))
        if action == "delete":
            # As nsqadmin does: forget the registration too, or lookupd keeps listing it
            # until the nodes re-register.
            for lookupd in self.lookupd_http:
                results.append(await self._action(lookupd, f"/{kind}/delete{query}"))
        return results

    async def _action(self, address: str, path: str) -> dict[str, Any]:
        try:
            status, body = await self._call("POST", address, path)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return {"address": address, "status": 0, "message": str(exc) or "unreachable"}
        if isinstance(body, dict):
            message = str(body.get("message", ""))
        else:
            message = "" if body is None else str(body)
        return {"address": address, "status": status, "message": message}


def _merge_topic(topics: dict[str, dict[str, Any]], stats: dict[str, Any], address: str) -> None:
    name = stats["topic_name"]
    topic = topics.setdefault(
        name,
        {"topic_name": name, "depth": 0, "message_count": 0, "paused": False, "nodes": []},
    )
    topic.setdefault("channels", [])
    topic["depth"] += stats.get("depth", 0)
    topic["message_count"] += stats.get("message_count", 0)
    topic["paused"] = topic["paused"] or bool(stats.get("paused"))
    topic["nodes"].append(address)
    by_name = {c["channel_name"]: c for c in topic["channels"]}
    for channel in stats.get("channels") or []:
        merged = by_name.get(channel["channel_name"])
        if merged is None:
            merged = {"channel_name": channel["channel_name"], "paused": False}
            merged.update(dict.fromkeys(CHANNEL_COUNTERS, 0))
            topic["channels"].append(merged)
            by_name[channel["channel_name"]] = merged
        for counter in CHANNEL_COUNTERS:
            merged[counter] += channel.get(counter, 0)
        merged["paused"] = merged["paused"] or bool(channel.get("paused"))
    topic["channels"].sort(key=lambda c: c["channel_name"])
