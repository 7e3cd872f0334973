"""The scenarios: connections, fanout, scale (both on one set of connections), churn, api.

Each returns figures and plot series.

A scenario gets a running `Target` and its `Options`, drives load with a
`Fleet` of client processes and a `Publisher`, and reads the server's memory
and CPU from /proc (when the server process is ours to measure).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from tidings.bench.fleet import Fleet
from tidings.bench.machine import TreeSample, parse_cpus, socket_memory, tree_sample
from tidings.bench.publisher import Publisher, PublishRun
from tidings.bench.target import Target

Say = Callable[[str], None]
Result = dict[str, Any]


@dataclass
class Options:
    """Sizes of one run (see `tidings bench --help`)."""

    conns: int = 1000
    channels: int = 2
    rate: float = 5.0
    size: int = 100
    batch: int = 1
    seconds: float = 10.0
    churn_rate: float = 100.0
    concurrency: int = 8
    sample_every: int = 20
    settle: float = 2.0
    #: The client processes: "python" (tidings.bench.worker) or "go" (goload).
    client: str = "python"
    #: `taskset -c` style CPU lists for the server and for the load generator ("" = any).
    server_cpus: str = ""
    client_cpus: str = ""
    #: `tidings serve --workers N` (a supervisor and N worker nodes) when above 1.
    server_workers: int = 1
    #: Or N separate `tidings serve` nodes on their own ports joined by a redis-server.
    server_nodes: int = 1
    #: Batch API calls with `"parallel": true` (sequential batches of publications reach
    #: Redis in one pipeline too: the figures are alike).
    parallel: bool = False


#: Namespaces the `api` scenario publishes into (the server is started with them).
API_NAMESPACES: dict[str, dict[str, Any]] = {
    "mem": {},
    "hist": {"history_size": 100, "history_ttl": 300},
    "never": {"history_size": 100, "history_ttl": 300, "durable": True, "fsync": "never"},
    "batch": {"history_size": 100, "history_ttl": 300, "durable": True, "fsync": "batch"},
    "always": {"history_size": 100, "history_ttl": 300, "durable": True, "fsync": "always"},
}


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))])


def _sample(target: Target) -> TreeSample | None:
    """The server's processes added up (every worker, a companion or private
    redis-server); None if not ours to measure."""
    return tree_sample(target.pids) if target.pids else None


def _cpu(before: TreeSample | None, after: TreeSample | None) -> float:
    return after.cpu - before.cpu if before is not None and after is not None else 0.0


def _fleet(target: Target, opts: Options, say: Say, **kwargs: Any) -> Fleet:
    return Fleet(
        target.host,
        target.ws_port,
        kwargs.pop("conns", opts.conns),
        path=target.ws_path,
        secret=target.secret,
        progress=say,
        client=opts.client,
        cpus=parse_cpus(opts.client_cpus),
        ports=target.client_ports,
        **kwargs,
    )


async def _watch(
    every: float,
    probe: Callable[[], Awaitable[tuple[float, float]]],
    out: list[tuple[float, float]],
) -> None:
    """Append `probe()` to `out` every `every` seconds until cancelled."""
    while True:
        out.append(await probe())
        await asyncio.sleep(every)


async def connections(target: Target, opts: Options, say: Say) -> Result:
    """N authenticated connections, each subscribed to K channels: memory and connect rate."""
    fleet = _fleet(target, opts, say, spread=opts.channels)
    try:
        return await _held(target, opts, say, fleet)
    finally:
        await fleet.stop()


async def _held(target: Target, opts: Options, say: Say, fleet: Fleet) -> Result:
    """Open `fleet` and let it settle: memory, connect rate, what idle connections cost."""
    before = _sample(target)
    sock0 = socket_memory()
    points: list[tuple[float, float]] = []

    async def probe() -> tuple[float, float]:
        now = _sample(target)
        rss = (now.rss - before.rss) / 2**20 if now is not None and before is not None else 0.0
        return float(sum(w.progress for w in fleet.workers)), rss

    watcher = asyncio.ensure_future(_watch(0.5, probe, points))
    try:
        opened, failed, wall = await fleet.start()
        after_connect = _sample(target)
        client_cpu = fleet.cpu_seconds()
        say(f"{opened} open ({failed} failed) in {wall:.1f}s; settling {opts.settle}s")
        settle0 = time.monotonic()
        await asyncio.sleep(opts.settle)
        after = _sample(target)
        settled = time.monotonic() - settle0
        sock1 = socket_memory()
        points.append(await probe())
        stats = await fleet.stats()
        per_node = await target.clients_per_node(opened) if target.nodes > 1 else []
    finally:
        watcher.cancel()
    per_conn = max(opened, 1)
    result: Result = {
        "conns": opened,
        "failed": failed,
        "lost": stats.lost,
        "channels_per_conn": opts.channels,
        "connect_wall_s": wall,
        "connects_per_s": opened / wall if wall else 0.0,
        "client": opts.client,
        "client_cpu_us_per_connect": client_cpu / per_conn * 1e6,
    }
    if before is not None and after is not None and after_connect is not None:
        result.update(
            rss_before_mb=before.rss / 2**20,
            rss_after_mb=after.rss / 2**20,
            kb_per_conn=(after.rss - before.rss) / per_conn / 1024,
            server_cpu_us_per_connect=_cpu(before, after_connect) / per_conn * 1e6,
        )
        connect_cpu = _cpu(before, after_connect)
        if connect_cpu > 0:
            result["connects_per_server_cpu_s"] = opened / connect_cpu
        # what holding the idle connections costs (pings; with Redis, refreshing entries)
        result["idle_server_cpu_share"] = _cpu(after_connect, after) / settled
        result.update(
            # all of it over all connections, not only what they added
            kb_per_conn_total=after.rss / per_conn / 1024,
            server_processes=after.processes,
            redis_rss_mb=after.redis_rss / 2**20,
            redis_rss_growth_mb=(after.redis_rss - before.redis_rss) / 2**20,
        )
    if per_node:
        result["clients_per_node"] = per_node
    # Both ends of every loopback connection are counted by the kernel.
    result["kernel_kb_per_conn_both_ends"] = (sock1 - sock0) / per_conn / 1024
    result["series"] = {
        "server RSS while connecting": {
            "kind": "line",
            "x": [p[0] for p in points],
            "y": [p[1] for p in points],
            "xlabel": "connections opened",
            "ylabel": "RSS growth (MiB)",
        }
    }
    return result


async def fanout(target: Target, opts: Options, say: Say) -> Result:
    """N subscribers of one channel; publications at `rate` calls/s of `batch` x `size` bytes."""
    # The fan channel and K - 1 rooms (as `connections`), and the personal channel.
    spread = max(opts.channels - 1, 0)
    fleet = _fleet(target, opts, say, channels="fan", spread=spread, sample_every=opts.sample_every)
    try:
        opened, failed, _wall = await fleet.start()
        say(f"{opened} subscribers ({failed} failed)")
        await asyncio.sleep(opts.settle)
        result = await _fan_out(target, opts, say, fleet, opened)
    finally:
        await fleet.stop()
    return {"subscribers": opened, "channels_per_conn": 1 + spread, "failed": failed, **result}


async def _fan_out(target: Target, opts: Options, say: Say, fleet: Fleet, opened: int) -> Result:
    """Publish into "fan" (which all `opened` connections of `fleet` joined) and count."""
    say(f"publishing {opts.rate}/s x {opts.batch} to {opened} subscribers")
    points: list[tuple[float, float]] = []
    await fleet.reset()
    t0 = time.monotonic()

    async def probe() -> tuple[float, float]:
        return time.monotonic() - t0, float((await fleet.stats()).publications)

    before = _sample(target)
    client_cpu0 = fleet.cpu_seconds()
    fan = Publisher(target.api_url, target.api_key, "fan", opts.size, parallel=opts.parallel)
    async with fan as pub:
        watcher = asyncio.ensure_future(_watch(0.5, probe, points))
        try:
            run = await pub.at_rate(opts.rate, opts.seconds, batch=opts.batch)
            expected = run.publications * opened
            # 30 s, or more for sizes the server takes longer than that to deliver
            t_end = await fleet.wait_for(expected, limit_s=30.0 + expected / 100_000)
        finally:
            watcher.cancel()
    after = _sample(target)
    client_cpu = fleet.cpu_seconds() - client_cpu0
    stats = await fleet.stats()
    latencies = [us / 1000 for us in await fleet.latencies_us()]
    deliveries = stats.publications
    wall = t_end - t0
    cpu = _cpu(before, after)
    rates = [
        (points[i][0], (points[i][1] - points[i - 1][1]) / (points[i][0] - points[i - 1][0]))
        for i in range(1, len(points))
        if points[i][0] > points[i - 1][0]
    ]
    result: Result = {
        "lost": stats.lost,
        "size": opts.size,
        "batch": opts.batch,
        "publish_calls_per_s": opts.rate,
        "publications": run.publications,
        "publish_errors": run.errors,
        "deliveries": deliveries,
        "deliveries_expected": run.publications * opened,
        "exact": stats.min_per_conn == stats.max_per_conn == run.publications,
        "wall_s": wall,
        "deliveries_per_s": deliveries / wall if wall else 0.0,
        "latency_samples": len(latencies),
        "latency_ms_p50": percentile(latencies, 0.50),
        "latency_ms_p90": percentile(latencies, 0.90),
        "latency_ms_p99": percentile(latencies, 0.99),
        "latency_ms_max": max(latencies, default=0.0),
        "client": opts.client,
        "client_cpu_s": client_cpu,
        "client_cpu_us_per_delivery": client_cpu / max(deliveries, 1) * 1e6,
    }
    if cpu > 0:
        result.update(
            server_cpu_s=cpu,
            server_user_s=after.user - before.user if after and before else 0.0,
            server_cpu_us_per_delivery=cpu / max(deliveries, 1) * 1e6,
            deliveries_per_cpu_s=deliveries / cpu,
            redis_cpu_s=after.redis_cpu - before.redis_cpu if after and before else 0.0,
            server_processes=after.processes if after else 0,
        )
    result["series"] = {
        "deliveries per second": {
            "kind": "line",
            "x": [r[0] for r in rates],
            "y": [r[1] for r in rates],
            "xlabel": "seconds",
            "ylabel": "deliveries/s",
        },
        "publish-to-receive latency": {
            "kind": "hist",
            "x": latencies[:100_000],
            "xlabel": "ms",
            "ylabel": "samples",
        },
    }
    return result


#: Publications per API call in `scale`'s coalesced fan-out (unless --batch says more).
SCALE_BATCH = 25


async def scale(target: Target, opts: Options, say: Say) -> Result:
    """`connections` and then two `fanout`s on the same connections (one connect, which
    is what takes long at 100k): each joins "fan" and K - 1 rooms (plus its personal
    channel); the fan-outs publish single messages, then batches of 25."""
    spread = max(opts.channels - 1, 0)
    fleet = _fleet(target, opts, say, channels="fan", spread=spread, sample_every=opts.sample_every)
    try:
        held = await _held(target, opts, say, fleet)
        opened = held["conns"]
        single = await _fan_out(target, replace(opts, batch=1), say, fleet, opened)
        batch = opts.batch if opts.batch > 1 else SCALE_BATCH
        coalesced = await _fan_out(target, replace(opts, batch=batch), say, fleet, opened)
    finally:
        await fleet.stop()
    series = held.pop("series")
    single_series, coalesced_series = single.pop("series"), coalesced.pop("series")
    series["deliveries per second, single messages"] = single_series["deliveries per second"]
    series[f"deliveries per second, batches of {batch}"] = coalesced_series["deliveries per second"]
    return {"idle": held, "single": single, "coalesced": coalesced, "series": series}


async def churn(target: Target, opts: Options, say: Say) -> Result:
    """A steady population; connections closed and opened at `churn_rate` a second."""
    fleet = _fleet(target, opts, say, spread=opts.channels)
    try:
        opened, failed, _wall = await fleet.start()
        say(f"{opened} open; churning {opts.churn_rate}/s for {opts.seconds}s")
        before = _sample(target)
        t0 = time.monotonic()
        closed, reopened, churn_failed = await fleet.churn(opts.churn_rate, opts.seconds)
        wall = time.monotonic() - t0
        await asyncio.sleep(min(opts.settle, 1.0))
        after = _sample(target)
        stats = await fleet.stats()
    finally:
        await fleet.stop()
    cpu = _cpu(before, after)
    result: Result = {
        "population": opened,
        "failed_initial": failed,
        "target_churn_per_s": opts.churn_rate,
        "closed": closed,
        "opened": reopened,
        "failed": churn_failed,
        "wall_s": wall,
        "connects_per_s": reopened / wall if wall else 0.0,
        "disconnects_per_s": closed / wall if wall else 0.0,
        "open_at_end": stats.open,
        "lost": stats.lost,
    }
    if cpu > 0 and after is not None and before is not None:
        result.update(
            server_cpu_share=cpu / wall,
            server_cpu_us_per_cycle=cpu / max(reopened, 1) * 1e6,
            rss_growth_kb=(after.rss - before.rss) / 1024,
        )
    result["series"] = {
        "connect+disconnect cycles": {
            "kind": "bar",
            "x": ["target/s", "achieved/s"],
            "y": [opts.churn_rate, result["connects_per_s"]],
            "xlabel": "",
            "ylabel": "cycles per second",
        }
    }
    return result


async def api(target: Target, opts: Options, say: Say) -> Result:
    """Publish API calls per second, into memory, history and durable namespaces."""
    variants: dict[str, Result] = {}
    for ns in API_NAMESPACES:
        channel = f"{ns}:bench"
        before = _sample(target)
        async with Publisher(target.api_url, target.api_key, channel, opts.size) as pub:
            run: PublishRun = await pub.flat_out(opts.seconds, concurrency=opts.concurrency)
        after = _sample(target)
        cpu = _cpu(before, after)
        row: Result = {
            "calls": run.calls,
            "errors": run.errors,
            "calls_per_s": run.calls / run.seconds if run.seconds else 0.0,
            "call_ms_p50": percentile(run.call_ms, 0.5),
            "call_ms_p99": percentile(run.call_ms, 0.99),
        }
        if cpu > 0:
            row["server_cpu_us_per_call"] = cpu / max(run.calls, 1) * 1e6
        variants[ns] = row
        say(f"api {ns}: {row['calls_per_s']:,.0f} calls/s, p99 {row['call_ms_p99']:.1f} ms")
    return {
        "concurrency": opts.concurrency,
        "size": opts.size,
        "variants": variants,
        "calls_per_s": variants["mem"]["calls_per_s"],
        "series": {
            "publish calls per second": {
                "kind": "bar",
                "x": list(variants),
                "y": [v["calls_per_s"] for v in variants.values()],
                "xlabel": "namespace",
                "ylabel": "calls/s",
            }
        },
    }


SCENARIOS: dict[str, Callable[[Target, Options, Say], Awaitable[Result]]] = {
    "connections": connections,
    "fanout": fanout,
    "scale": scale,
    "churn": churn,
    "api": api,
}
