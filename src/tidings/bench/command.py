"""`tidings bench <scenario>`: argument parsing and one run from start to results file."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from tidings.bench import centrifugo, machine, results, target
from tidings.bench.fleet import CLIENTS
from tidings.bench.scenarios import API_NAMESPACES, SCENARIOS, Options

#: The servers `--target` starts: tidings, or a Centrifugo v6 peer.
TARGETS = ("tidings", *centrifugo.TARGETS)


def add_parser(sub: Any) -> None:
    """Register `bench` on the `tidings` subcommand parser."""
    parser = sub.add_parser(
        "bench",
        help="run a load scenario against a node",
        description=(
            "Load a node with the built-in load generator (several client processes) and "
            "record the figures as JSON and PNG under --out. A `tidings serve` process is "
            "started on free loopback ports unless --url is given."
        ),
    )
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    defaults = Options()
    parser.add_argument("--conns", type=int, default=defaults.conns, help="connections")
    parser.add_argument("--channels", type=int, default=defaults.channels, help="K per conn")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="publish calls/s")
    parser.add_argument("--size", type=int, default=defaults.size, help="payload bytes")
    parser.add_argument("--batch", type=int, default=defaults.batch, help="publications/call")
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="load duration")
    parser.add_argument("--churn-rate", type=float, default=defaults.churn_rate)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--sample-every", type=int, default=defaults.sample_every)
    parser.add_argument("--settle", type=float, default=defaults.settle)
    parser.add_argument(
        "--client",
        choices=CLIENTS,
        default=defaults.client,
        help="client processes: python (tidings.bench.worker) or go (goload, compiled here)",
    )
    parser.add_argument(
        "--server-cpus", default="", help="pin the server to these CPUs (taskset -c list)"
    )
    parser.add_argument(
        "--client-cpus", default="", help="pin the load generator to these CPUs (taskset -c list)"
    )
    parser.add_argument(
        "--server-workers",
        type=int,
        default=defaults.server_workers,
        metavar="N",
        help=(
            "start `tidings serve --workers N`: N worker nodes sharing the ports; memory "
            "and CPU are read from every process of the server (20,000 descriptors each: "
            "100,000 connections need 6 or more)"
        ),
    )
    parser.add_argument(
        "--parallel",
        action="store_true",
        help='batch API calls with "parallel": true (their publications may go out at once)',
    )
    parser.add_argument(
        "--server-nodes",
        type=int,
        default=defaults.server_nodes,
        metavar="N",
        help=(
            "start N separate `tidings serve` processes, each on its own ports, joined by a "
            "private redis-server (engine = redis); the load is spread over their ports"
        ),
    )
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default="tidings",
        help="the server started for the run (Centrifugo is built by build-bench-peers.sh)",
    )
    parser.add_argument("--url", default="", help="ws://host:port/path of a running server")
    parser.add_argument("--api-url", default="", help="http://host:port of its API (with --url)")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--secret", default="", help="token HMAC secret (with --url)")
    parser.add_argument(
        "--redis-address",
        default="",
        help=(
            "start the node with engine = redis on this redis:// URL (publications through "
            "Redis); with --target centrifugo-redis, Centrifugo uses this Redis"
        ),
    )
    parser.add_argument("--out", type=Path, default=results.RESULTS_DIR)
    parser.add_argument("--label", default="", help="suffix for the results file names")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="whole-run limit")


def options(args: argparse.Namespace) -> Options:
    return Options(
        conns=args.conns,
        channels=args.channels,
        rate=args.rate,
        size=args.size,
        batch=args.batch,
        seconds=args.seconds,
        churn_rate=args.churn_rate,
        concurrency=args.concurrency,
        sample_every=args.sample_every,
        settle=args.settle,
        client=args.client,
        server_cpus=args.server_cpus,
        client_cpus=args.client_cpus,
        server_workers=args.server_workers,
        server_nodes=args.server_nodes,
        parallel=args.parallel,
    )


def engine_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Settings of the started node's engine: memory unless --redis-address is given."""
    if not args.redis_address:
        return {}
    return {
        "engine": "redis",
        "redis_address": [args.redis_address],
        "redis_prefix": "bench",
        # the bench measures throughput; the Redis it is given need not keep writes
        "durable_allow_volatile": True,
    }


def _say(t0: float) -> Any:
    def say(message: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {message}", flush=True)

    return say


async def start_target(
    name: str, scenario: str, opts: Options, settings: dict[str, Any] | None = None
) -> target.Target:
    """Start the server `name` (one of TARGETS) on free ports, pinned to --server-cpus.

    `settings` are added to a tidings node's config (e.g. its Redis engine).
    """
    cpus = machine.parse_cpus(opts.server_cpus)
    if name in centrifugo.TARGETS:
        if opts.server_workers != 1 or opts.server_nodes != 1:
            raise ValueError(f"{name} is one process: --server-workers/-nodes are for tidings")
        addresses = (settings or {}).get("redis_address") or [""]
        redis_url = addresses[0] if centrifugo.TARGETS[name] == "redis" else ""
        return await centrifugo.start(centrifugo.TARGETS[name], API_NAMESPACES, cpus, redis_url)
    if name != "tidings":
        raise ValueError(f"unknown target {name!r}")
    namespaces = API_NAMESPACES if scenario == "api" else {}
    if opts.server_nodes > 1:
        if opts.server_workers != 1 or settings:
            raise ValueError("--server-nodes brings its own redis-server, and one worker each")
        return await target.start_tidings_nodes(opts.server_nodes, namespaces, cpus)
    return await target.start_tidings(namespaces, cpus, settings, workers=opts.server_workers)


async def execute(
    scenario: str,
    opts: Options,
    tgt: target.Target | None = None,
    say: Any = None,
    target_name: str = "tidings",
    *,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run `scenario` against `tgt` (or a fresh `target_name` server); return the record.

    With --client-cpus this process (the publisher) and its client processes run on
    those CPUs; the server runs on --server-cpus, or on every CPU it may use.
    """
    say = say or _say(time.monotonic())
    # no --client-cpus: every CPU this process started with (an earlier run may have pinned it)
    machine.pin(machine.parse_cpus(opts.client_cpus) or machine.START_AFFINITY)
    own = tgt is None
    if tgt is None:
        tgt = await start_target(target_name, scenario, opts, settings)
        say(f"started {tgt.name} (pid {tgt.pid}, client port {tgt.ws_port})")
    started = time.time()
    # Where each side may run, as the kernel has it (not as asked).
    pinning = {"client_cpus": sorted(os.sched_getaffinity(0))}
    if tgt.pid is not None:
        pinning["server_cpus"] = sorted(os.sched_getaffinity(tgt.pid))
    loads: list[float] = []
    watcher = asyncio.ensure_future(_watch_load(loads))
    log_tail = ""
    try:
        result = await SCENARIOS[scenario](tgt, opts, say)
    finally:
        watcher.cancel()
        if own:
            log_tail = tgt.log_tail()
            await tgt.stop()
    return {
        "scenario": scenario,
        "target": tgt.name,
        # the tidings node's engine (memory or redis); other targets name theirs in `target`
        "engine": (settings or {}).get("engine", "memory") if target_name == "tidings" else "",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "options": vars(opts),
        "machine": machine.description(),
        "pinning": pinning,
        "server_workers": opts.server_workers,
        "server_nodes": tgt.nodes,
        # the 1-minute load average read every 2 s while the scenario ran
        "load_average": machine.load_summary(loads),
        # its last words (why connections were lost, a worker restarted, ...)
        "server_log_tail": log_tail.splitlines()[-12:],
        "result": result,
    }


async def _watch_load(out: list[float], every: float = 2.0) -> None:
    while True:
        out.append(machine.load_average())
        await asyncio.sleep(every)


def run(args: argparse.Namespace) -> int:
    """The `bench` subcommand."""
    import uvloop

    machine.raise_nofile_limit()
    say = _say(time.monotonic())
    tgt = None
    if args.url:
        tgt = target.external(args.url, args.api_url, args.api_key, args.secret)

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(
            execute(
                args.scenario,
                options(args),
                tgt,
                say,
                args.target,
                settings=engine_settings(args),
            ),
            args.max_seconds,
        )

    try:
        record = uvloop.run(bounded())
    except (TimeoutError, RuntimeError, OSError, ValueError) as exc:
        print(f"tidings bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.label:
        record["label"] = args.label
    print(results.headline(record["result"]))
    json_path, png_path = results.save(args.scenario, record, args.out, plot=not args.no_plot)
    print(f"wrote {json_path}" + (f" and {png_path}" if png_path else ""))
    return 0
