"""`tidings bench <scenario>`: argument parsing and one run from start to results file."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from tidings.bench import machine, results, target
from tidings.bench.scenarios import API_NAMESPACES, SCENARIOS, Options


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
    parser.add_argument("--url", default="", help="ws://host:port/path of a running server")
    parser.add_argument("--api-url", default="", help="http://host:port of its API (with --url)")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--secret", default="", help="token HMAC secret (with --url)")
    parser.add_argument(
        "--redis-address",
        default="",
        help="start the node with engine = redis on this redis:// URL (publications through Redis)",
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


async def execute(
    scenario: str,
    opts: Options,
    tgt: target.Target | None = None,
    say: Any = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run `scenario` against `tgt` (or a fresh `tidings serve`) and return the record."""
    say = say or _say(time.monotonic())
    own = tgt is None
    if tgt is None:
        namespaces = API_NAMESPACES if scenario == "api" else {}
        tgt = await target.start_tidings(namespaces, settings)
        say(f"started tidings serve (pid {tgt.pid}, client port {tgt.ws_port})")
    started = time.time()
    try:
        result = await SCENARIOS[scenario](tgt, opts, say)
    finally:
        if own:
            await tgt.stop()
    return {
        "scenario": scenario,
        "target": tgt.name,
        "engine": (settings or {}).get("engine", "memory") if own else "external",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "options": vars(opts),
        "machine": machine.description(),
        "result": result,
    }


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
            execute(args.scenario, options(args), tgt, say, engine_settings(args)),
            args.max_seconds,
        )

    try:
        record = uvloop.run(bounded())
    except (TimeoutError, RuntimeError, OSError) as exc:
        print(f"tidings bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.label:
        record["label"] = args.label
    print(results.headline(record["result"]))
    json_path, png_path = results.save(args.scenario, record, args.out, plot=not args.no_plot)
    print(f"wrote {json_path}" + (f" and {png_path}" if png_path else ""))
    return 0
