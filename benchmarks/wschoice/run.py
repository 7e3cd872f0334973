"""Fan-out benchmark driver for the servers in ``servers.py``.

For each server variant this script

1. starts ``servers.py <lib> --port P`` as its own process;
2. opens one *control* connection from this process and reads the server's
   baseline RSS;
3. opens ``--conns`` idle WebSocket connections from several worker
   processes (each below ``--per-worker`` sockets, because a process may
   hold at most RLIMIT_NOFILE descriptors) and reads the RSS again:
   ``(rss_after - rss_before) / conns`` is the memory per idle connection;
4. runs ``--rounds`` rounds of ``go N S`` sent on the control connection:
   the server sends N messages of S bytes to every connection.  Server CPU
   seconds for the round (``cpu`` command before/after) give deliveries
   per second per core; the wall time until the last client saw its last
   message gives the end-to-end rate (clients share the same cores);
5. stops the server, then the workers.

All traffic stays on 127.0.0.1.  Every wait is bounded, so the run stops by
itself.  Results are printed as a table and written to ``results.json``
next to this file.

Usage::

    python run.py [--conns 19000] [--libs picows,aiohttp,websockets,...]

Internal: ``python run.py --worker ...`` is the client worker process.

This file holds the command line, the loop over the variants and the report;
``variant.py`` measures one variant and ``clients.py`` is the client side
(the WebSocket client protocol and the worker process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import uvloop
from clients import run_worker
from variant import DEFAULT_VARIANTS, VARIANTS, run_variant

from tidings.bench.machine import description, raise_nofile_limit

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
PACKAGES = ("picows", "aiohttp", "websockets", "uvloop", "aiofastnet", "msgspec")


def print_table(results: list[dict[str, Any]]) -> None:
    header = (
        f"{'variant':<20} {'conns':>6} {'KB/idle conn':>12} {'deliv/s/core':>13} "
        f"{'best':>9} {'wall deliv/s':>12} {'user%':>6} {'hs CPU us':>10} {'exact':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if "error" in r:
            print(f"{r['variant']:<20} ERROR: {r['error']}")
            continue
        print(
            f"{r['variant']:<20} {r['conns']:>6} {r['kb_per_idle_conn']:>12.1f} "
            f"{r['per_core_per_s_median']:>13,.0f} {r['per_core_per_s_best']:>9,.0f} "
            f"{r['wall_per_s_median']:>12,.0f} {100 * r['user_share']:>6.0f} "
            f"{r['connect_cpu_us_per_conn']:>10.0f} "
            f"{'yes' if r['every_conn_exact'] else 'NO':>6}"
        )


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    names = [n.strip() for n in args.libs.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants: {unknown}; known: {list(VARIANTS)}")
    results: list[dict[str, Any]] = []
    t_start = time.monotonic()
    for i, name in enumerate(names):
        port = args.base_port + i
        print(f"== {name} (port {port}, {args.conns} conns)", flush=True)
        t0 = time.monotonic()
        try:
            res = await asyncio.wait_for(run_variant(name, port, args), args.variant_timeout)
        except Exception as exc:  # report and continue with the next variant
            res = {"variant": name, "error": f"{type(exc).__name__}: {exc!r}"}
        res["elapsed_s"] = time.monotonic() - t0
        results.append(res)
        if "error" not in res:
            print(
                f"   {res['kb_per_idle_conn']:.1f} KB/conn, "
                f"{res['per_core_per_s_median']:,.0f} deliveries/s/core, "
                f"{res['elapsed_s']:.0f}s",
                flush=True,
            )
        else:
            print(f"   ERROR {res['error']}", flush=True)
        await asyncio.sleep(1.0)
    print()
    print_table(results)
    out = {
        "machine": description(PACKAGES, with_load=False),
        "params": {
            "conns": args.conns,
            "n": args.n,
            "size": args.size,
            "rounds": args.rounds,
            "per_worker": args.per_worker,
            "settle_s": args.settle,
        },
        "total_elapsed_s": time.monotonic() - t_start,
        "results": results,
    }
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="WebSocket fan-out benchmark driver")
    p.add_argument("--conns", type=int, default=19_000, help="idle connections")
    p.add_argument("--libs", default=DEFAULT_VARIANTS, help=f"any of {list(VARIANTS)}")
    p.add_argument("--n", type=int, default=10, help="messages per round (go N S)")
    p.add_argument("--size", type=int, default=100, help="message size in bytes")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--per-worker", type=int, default=8000, help="max sockets per worker")
    p.add_argument("--concurrency", type=int, default=64, help="connects in flight/worker")
    p.add_argument("--settle", type=float, default=2.0, help="seconds before idle RSS")
    p.add_argument("--base-port", type=int, default=18100)
    p.add_argument("--variant-timeout", type=float, default=150.0)
    p.add_argument("--round-timeout", type=float, default=60.0)
    p.add_argument("--output", default=str(RESULTS), help="JSON path ('' to skip)")
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--deflate", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--max-seconds", type=float, default=300.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not 0 < args.conns <= 100_000 or not 0 < args.n <= 10_000:
        p.error("--conns/--n out of range")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    raise_nofile_limit()
    out = uvloop.run(orchestrate(args))
    if args.output:
        Path(args.output).write_text(json.dumps(out, indent=2) + "\n")
        print(f"\nwrote {args.output}")
    return 0 if all("error" not in r for r in out["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
