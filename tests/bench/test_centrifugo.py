"""Centrifugo v6 as a bench target: its generated config, and tiny runs against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.bench.support import bench_record
from tidings.bench import centrifugo
from tidings.bench.scenarios import API_NAMESPACES
from tidings.testing.redis import RedisServer


def test_memory_config() -> None:
    cfg = centrifugo.config(port=8123, secret="s3", api_key="k", namespaces=API_NAMESPACES)
    assert cfg["http_server"] == {"address": "127.0.0.1", "port": 8123}
    assert cfg["engine"] == {"type": "memory"}
    assert cfg["client"]["token"]["hmac_secret_key"] == "s3"
    assert cfg["client"]["subscribe_to_user_personal_channel"]["enabled"] is True
    assert cfg["http_api"]["key"] == "k"
    assert cfg["health"]["enabled"] is True
    # Nothing leaves the machine.
    assert cfg["usage_stats"]["disabled"] is True
    assert cfg["channel"]["without_namespace"]["allow_subscribe_for_client"] is True
    spaces = {ns["name"]: ns for ns in cfg["channel"]["namespaces"]}
    assert set(spaces) == set(API_NAMESPACES)
    assert "history_size" not in spaces["mem"]
    assert spaces["hist"]["history_size"] == 100 and spaces["hist"]["history_ttl"] == "300s"


def test_redis_config() -> None:
    cfg = centrifugo.config(
        port=1, secret="s", api_key="k", engine="redis", redis_url="redis://127.0.0.1:7001"
    )
    assert cfg["engine"] == {"type": "redis", "redis": {"address": ["redis://127.0.0.1:7001"]}}
    assert cfg["channel"]["namespaces"] == []


def _bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    return bench_record(tmp_path, *args, "--no-plot")


@pytest.mark.timeout(90)
def test_fanout_against_centrifugo(tmp_path: Path) -> None:
    """Centrifugo (built for the proxy tests too) verifies the Go client's tokens and
    delivers every publication of the API's single and batch calls."""
    args = ["--conns", "20", "--settle", "0.2", "--seconds", "1", "--sample-every", "2"]
    record = _bench(tmp_path, "fanout", "--target", "centrifugo", "--client", "go", *args)
    assert record["target"] == "centrifugo"
    result = record["result"]
    assert result["publish_errors"] == 0 and result["publications"] == 5
    assert result["deliveries"] == result["deliveries_expected"] == 100
    assert result["exact"] is True
    assert result["latency_samples"] == 50


@pytest.mark.timeout(90)
def test_connections_against_centrifugo_with_redis(tmp_path: Path) -> None:
    args = ["--conns", "20", "--settle", "0.2", "--channels", "2"]
    record = _bench(tmp_path, "connections", "--target", "centrifugo-redis", *args)
    result = record["result"]
    assert result["conns"] == 20 and result["failed"] == 0 and result["lost"] == 0
    # Centrifugo and its private redis-server are measured together.
    assert result["rss_after_mb"] > result["rss_before_mb"] > 0


def _commands(server: RedisServer) -> int:
    stats = server.cli("info", "stats")
    line = next(ln for ln in stats.splitlines() if ln.startswith("total_commands_processed:"))
    return int(line.split(":")[1])


@pytest.mark.timeout(90)
def test_fanout_against_centrifugo_on_a_given_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """--redis-address points Centrifugo at that Redis (shared with a tidings node)."""
    before = _commands(redis_server)
    args = ["--conns", "20", "--settle", "0.2", "--seconds", "1", "--sample-every", "2"]
    record = _bench(
        tmp_path,
        "fanout",
        "--target",
        "centrifugo-redis",
        "--redis-address",
        redis_server.url,
        "--client",
        "go",
        *args,
    )
    result = record["result"]
    assert result["exact"] is True and result["publications"] == 5
    # its subscriptions and publications went through the given server
    assert _commands(redis_server) - before > 20
