"""Each `tidings bench` scenario at a tiny size, so the benchmark code cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tidings.testing.redis import RedisServer

TINY = ["--conns", "20", "--settle", "0.2", "--no-plot"]


def _bench(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "tidings", "bench", *args, *TINY, "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())["result"]


@pytest.mark.timeout(60)
def test_connections(tmp_path: Path) -> None:
    result = _bench(tmp_path, "connections", "--channels", "2", "--seconds", "1")
    assert result["conns"] == 20 and result["failed"] == 0
    assert result["connects_per_s"] > 0
    assert result["kb_per_conn"] > 0
    assert result["rss_after_mb"] > result["rss_before_mb"] > 0


@pytest.mark.timeout(60)
def test_fanout(tmp_path: Path) -> None:
    result = _bench(tmp_path, "fanout", "--rate", "10", "--seconds", "1", "--sample-every", "2")
    assert result["publications"] == 10
    assert result["deliveries"] == result["deliveries_expected"] == 200
    assert result["exact"] is True
    assert result["deliveries_per_s"] > 0
    assert 0 < result["latency_ms_p50"] <= result["latency_ms_p99"] <= result["latency_ms_max"]


@pytest.mark.timeout(60)
def test_churn(tmp_path: Path) -> None:
    result = _bench(tmp_path, "churn", "--churn-rate", "20", "--seconds", "1")
    assert result["opened"] == 20 and result["failed"] == 0
    assert result["connects_per_s"] > 0
    assert result["open_at_end"] == 20


@pytest.mark.timeout(60)
def test_api(tmp_path: Path) -> None:
    result = _bench(tmp_path, "api", "--concurrency", "2", "--seconds", "0.3")
    for name, variant in result["variants"].items():
        assert variant["calls"] > 0, name
        assert variant["errors"] == 0, name
        assert variant["calls_per_s"] > 0, name


@pytest.mark.timeout(60)
def test_fanout_through_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    out = tmp_path / "results"
    commands_before = _redis_commands(redis_server)
    args = ["fanout", "--rate", "10", "--seconds", "1", "--redis-address", redis_server.url]
    proc = subprocess.run(
        [sys.executable, "-m", "tidings", "bench", *args, *TINY, "--out", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = out.glob("*.json")
    record = json.loads(path.read_text())
    assert record["engine"] == "redis"
    assert record["result"]["deliveries"] == record["result"]["deliveries_expected"] == 200
    # the node really went through Redis: at least one command per publication
    assert _redis_commands(redis_server) - commands_before >= 10


def _redis_commands(server: RedisServer) -> int:
    stats = server.cli("INFO", "stats")
    (line,) = [ln for ln in stats.splitlines() if ln.startswith("total_commands_processed:")]
    return int(line.split(":")[1])
