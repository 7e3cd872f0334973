"""Each `tidings bench` scenario at a tiny size, so the benchmark code cannot rot."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.bench.support import bench_record
from tidings.bench.machine import process_tree
from tidings.testing.redis import RedisServer

GOLOAD = Path(__file__).resolve().parents[2] / "src" / "tidings" / "bench" / "goload"
TINY = ["--conns", "20", "--settle", "0.2", "--no-plot"]


def _bench(tmp_path: Path, *args: str) -> dict:
    return _record(tmp_path, *args)["result"]


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


def _record(tmp_path: Path, *args: str) -> dict:
    return bench_record(tmp_path, *args, *TINY)


def _cpus() -> tuple[str, str]:
    """A CPU for the server and one for the clients (the same one on a 1-CPU machine)."""
    cpus = sorted(os.sched_getaffinity(0))
    return str(cpus[0]), str(cpus[-1])


@pytest.mark.timeout(90)
def test_connections_go_client(tmp_path: Path) -> None:
    server, client = _cpus()
    record = _record(
        tmp_path,
        "connections",
        "--client", "go",
        "--channels", "2",
        "--server-cpus", server,
        "--client-cpus", client,
    )  # fmt: skip
    result = record["result"]
    assert result["client"] == "go"
    assert result["conns"] == 20 and result["failed"] == 0 and result["lost"] == 0
    assert result["kb_per_conn"] > 0
    assert record["pinning"] == {"client_cpus": [int(client)], "server_cpus": [int(server)]}


@pytest.mark.timeout(90)
def test_fanout_go_client(tmp_path: Path) -> None:
    args = ["--rate", "10", "--seconds", "1", "--sample-every", "2", "--client", "go"]
    result = _record(tmp_path, "fanout", *args)["result"]
    assert result["client"] == "go"
    assert result["publications"] == 10
    assert result["deliveries"] == result["deliveries_expected"] == 200
    assert result["exact"] is True
    # Every other connection reads the send stamps: 10 connections x 10 publications.
    assert result["latency_samples"] == 100
    assert 0 < result["latency_ms_p50"] <= result["latency_ms_p99"] <= result["latency_ms_max"]


@pytest.mark.timeout(90)
def test_fanout_go_client_batches(tmp_path: Path) -> None:
    args = ["--rate", "4", "--batch", "25", "--seconds", "1", "--client", "go"]
    result = _record(tmp_path, "fanout", *args)["result"]
    assert result["deliveries"] == result["deliveries_expected"] == 4 * 25 * 20
    assert result["exact"] is True


@pytest.mark.timeout(90)
def test_churn_go_client(tmp_path: Path) -> None:
    args = ["--churn-rate", "20", "--seconds", "1", "--client", "go"]
    result = _record(tmp_path, "churn", *args)["result"]
    assert result["opened"] == 20 and result["failed"] == 0
    assert result["closed"] == 20 and result["open_at_end"] == 20
    assert result["lost"] == 0


@pytest.mark.timeout(120)
def test_goload_unit_tests() -> None:
    """The Go client's own tests: token counting across reads, frames, tokens."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    proc = subprocess.run(
        [go, "test", "."],
        cwd=GOLOAD,
        check=False,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(90)
def test_fanout_through_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    commands_before = _redis_commands(redis_server)
    args = ["fanout", "--rate", "10", "--seconds", "1", "--redis-address", redis_server.url]
    record = _record(tmp_path, *args)
    assert record["engine"] == "redis"
    assert record["result"]["deliveries"] == record["result"]["deliveries_expected"] == 200
    # the node really went through Redis: at least one command per publication
    assert _redis_commands(redis_server) - commands_before >= 10


def _redis_commands(server: RedisServer) -> int:
    stats = server.cli("INFO", "stats")
    (line,) = [ln for ln in stats.splitlines() if ln.startswith("total_commands_processed:")]
    return int(line.split(":")[1])


def _own_processes() -> set[int]:
    """Processes below this one (whatever a bench run leaves behind shows up here)."""
    return set(process_tree(os.getpid())[1:])


@pytest.mark.timeout(120)
def test_workers_measured_as_one_server(tmp_path: Path) -> None:
    """`--server-workers 2`: the supervisor, its 2 workers and private redis-server are
    one server: memory and CPU added up, the redis-server's share apart, both nodes used."""
    before = _own_processes()
    record = _record(tmp_path, "connections", "--client", "go", "--server-workers", "2")
    result = record["result"]
    assert record["server_workers"] == record["server_nodes"] == 2
    assert result["conns"] == 20 and result["failed"] == 0
    assert result["server_processes"] == 4  # supervisor, 2 workers, redis-server
    assert 0 < result["redis_rss_mb"] < result["rss_after_mb"]
    assert sum(result["clients_per_node"]) == 20 and len(result["clients_per_node"]) == 2
    load = record["load_average"]
    assert load["min"] <= load["mean"] <= load["max"]
    assert _own_processes() == before  # nothing of the server is left running


@pytest.mark.timeout(120)
def test_fanout_over_separate_nodes(tmp_path: Path) -> None:
    """`--server-nodes 2`: two `tidings serve` on their own ports, one redis-server
    between them; the fleet connects to both and each subscriber gets every publication."""
    record = _record(tmp_path, "fanout", "--rate", "10", "--seconds", "1", "--server-nodes", "2")
    result = record["result"]
    assert record["server_nodes"] == 2
    assert result["deliveries"] == result["deliveries_expected"] == 200
    assert result["exact"] is True
    assert result["server_processes"] == 3 and result["redis_cpu_s"] >= 0
