"""Run tidings and the peers under the same load and write BENCHMARKS.md.

Usage::

    python benchmarks/compare.py [--quick] [--peers websockets,aiohttp,gohub]
    python benchmarks/compare.py --peers centrifugo,centrifugo-redis --client go \
        --server-cpus 0 --client-cpus 1 --block go

Every case runs against each server in turn with the `tidings.bench` load
generator (`--client python` worker processes or the compiled `--client go`),
optionally with the server and the load generator pinned to different CPUs:
tidings via `tidings serve`, the peers from benchmarks/peers/ (README.md there
describes them and their protocol subset), and Centrifugo v6 with the memory
or the Redis engine (`tidings.bench.centrifugo`; built by
scripts/build-bench-peers.sh). Each run's
JSON and PNG land in benchmarks/results/; the table, as ratios, and the
targets go to BENCHMARKS.md at the repository root, between the
`<!-- compare:begin -->` / `<!-- compare:end -->` markers, or
`<!-- compare:<block>:begin -->` / `... :end -->` with `--block` (the prose
around them is kept).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvloop

from tidings.bench import centrifugo, machine, results
from tidings.bench.command import execute
from tidings.bench.fleet import CLIENTS
from tidings.bench.scenarios import API_NAMESPACES, Options
from tidings.bench.target import Target, free_port, spawn

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / "peers"
GOHUB = PEERS / "gohub"

#: case name -> (scenario, options, the figure compared, True if higher is better)
CASES: dict[str, tuple[str, Options, str, bool]] = {
    "idle connections (K=2)": (
        "connections",
        Options(conns=19_900, channels=2, settle=3.0),
        "kb_per_conn",
        False,
    ),
    "connect rate": (
        "connections",
        Options(conns=19_900, channels=2, settle=3.0),
        "connects_per_s",
        True,
    ),
    "fan-out, single messages, 19,900 subs": (
        "fanout",
        Options(conns=19_900, rate=5, seconds=8, sample_every=50),
        "deliveries_per_cpu_s",
        True,
    ),
    "fan-out, single messages, 19,900 subs, wall clock": (
        "fanout",
        Options(conns=19_900, rate=5, seconds=8, sample_every=50),
        "deliveries_per_s",
        True,
    ),
    "fan-out, coalescing (batches of 25), 19,900 subs": (
        "fanout",
        Options(conns=19_900, rate=4, batch=25, seconds=4, sample_every=50),
        "deliveries_per_cpu_s",
        True,
    ),
    "fan-out, coalescing (batches of 25), 19,900 subs, wall clock": (
        "fanout",
        Options(conns=19_900, rate=4, batch=25, seconds=4, sample_every=50),
        "deliveries_per_s",
        True,
    ),
    "p99 latency at 100k deliveries/s (1,000 subs x 100/s)": (
        "fanout",
        Options(conns=1000, rate=100, seconds=10, sample_every=5),
        "latency_ms_p99",
        False,
    ),
}
#: case -> (target, comparison "ge"/"le", what the target says)
TARGETS: dict[str, tuple[float, str, str]] = {
    "fan-out, single messages, 19,900 subs": (110_000, "ge", ">= 110k deliveries/s per core"),
    "fan-out, coalescing (batches of 25), 19,900 subs": (
        1_500_000,
        "ge",
        ">= 1.5M deliveries/s per core",
    ),
    "idle connections (K=2)": (10.0, "le", "<= 10 KB per idle conn (2 channels + personal)"),
    "p99 latency at 100k deliveries/s (1,000 subs x 100/s)": (50.0, "le", "p99 <= 50 ms"),
}
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"

#: Cases sharing one run (same scenario and options): run once, read twice.
SHARED = {
    "connect rate": "idle connections (K=2)",
    "fan-out, single messages, 19,900 subs, wall clock": "fan-out, single messages, 19,900 subs",
    "fan-out, coalescing (batches of 25), 19,900 subs, wall clock": (
        "fan-out, coalescing (batches of 25), 19,900 subs"
    ),
}
#: Why a peer cannot be run at some size on this machine (printed under the table).
LIMITS = {
    "centrifugo": (
        "Centrifugo is one process: like one tidings process it holds at most ~19,990 "
        "sockets under the 20,000-descriptor hard limit, so 100k connections need several "
        "nodes (Redis engine) behind a balancer, which it does not provide on one port."
    ),
    "centrifugo-redis": (
        "The Redis variant's figures include the private redis-server's RSS and CPU; "
        "one Centrifugo process, same 20,000-descriptor limit as above."
    ),
}


def build_gohub() -> None:
    if (GOHUB / "gohub").exists():
        return
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode")
    subprocess.run(["go", "build", "-o", "gohub", "."], cwd=GOHUB, env=env, check=True)


async def start_peer(name: str, cpus: frozenset[int] = frozenset()) -> Target:
    if name in centrifugo.TARGETS:
        return await centrifugo.start(centrifugo.TARGETS[name], API_NAMESPACES, cpus)
    port, api_port = free_port(), free_port()
    common = ["--port", str(port), "--api-port", str(api_port), "--max-seconds", "900"]
    if name == "gohub":
        build_gohub()
        argv = [str(GOHUB / "gohub"), *common]
        return await spawn(name, argv, port, api_port, cpus=cpus, env={"GOMAXPROCS": "1"})
    argv = [sys.executable, str(PEERS / "pypeers.py"), name, *common]
    return await spawn(name, argv, port, api_port, cpus=cpus)


async def run_case(server: str, scenario: str, opts: Options, say: Any) -> dict[str, Any]:
    cpus = machine.parse_cpus(opts.server_cpus)
    tgt = None if server == "tidings" else await start_peer(server, cpus)
    try:
        record = await asyncio.wait_for(execute(scenario, opts, tgt, say), 600)
    finally:
        if tgt is not None:
            await tgt.stop()
    record["target"] = server
    record["label"] = f"{server}-{opts.client}"
    record["result"]["load_average_1m"] = record["machine"]["load_average_1m"]
    json_path, _png = results.save(scenario, record, ROOT / "benchmarks" / "results")
    say(f"wrote {json_path.relative_to(ROOT)}")
    await asyncio.sleep(1.0)  # let TIME_WAIT and CPU settle between runs
    return record


async def compare(
    servers: list[str], quick: bool, common: dict[str, Any] | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    t0 = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {message}", flush=True)

    table: dict[str, dict[str, dict[str, Any]]] = {}
    for case, (scenario, case_opts, _figure, _higher) in CASES.items():
        if case in SHARED:
            table[case] = table[SHARED[case]]
            continue
        opts = replace(case_opts, **(common or {}))
        if quick:
            opts = replace(opts, conns=min(opts.conns, 2000), seconds=min(opts.seconds, 3))
        table[case] = {}
        for server in servers:
            say(f"== {case}: {server}")
            try:
                table[case][server] = (await run_case(server, scenario, opts, say))["result"]
            except Exception as exc:  # one failing server must not lose the others
                say(f"   {server} failed: {type(exc).__name__}: {exc}")
                table[case][server] = {"error": f"{type(exc).__name__}: {exc}"}
    return table


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _load_row(table: dict[str, dict[str, dict[str, Any]]], servers: list[str]) -> str:
    """The 1-minute load average at the start of each server's runs (lowest-highest)."""
    cells = ["load average (1 min) at the start of its runs", "-"]
    for server in servers:
        loads = [
            row[server]["load_average_1m"]
            for row in table.values()
            if isinstance(row.get(server, {}).get("load_average_1m"), int | float)
        ]
        cells.append(f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-")
        if server != "tidings":
            cells.append("-")
    return "| " + " | ".join(cells) + " |"


def render(
    table: dict[str, dict[str, dict[str, Any]]],
    servers: list[str],
    argv: str,
    setup: str = "",
) -> str:
    info = machine.description()
    peers = [s for s in servers if s != "tidings"]
    head = "| case | figure | tidings | " + " | ".join(f"{p} | tidings ÷ {p}" for p in peers)
    lines = [
        head + " |",
        "|" + "---|" * (3 + 2 * len(peers)),
    ]
    for case, (_scenario, _opts, figure, higher) in CASES.items():
        row = table.get(case, {})
        ours = row.get("tidings", {}).get(figure)
        cells = [case, figure + (" (higher is better)" if higher else " (lower is better)")]
        cells.append(_fmt(ours) if isinstance(ours, int | float) else "error")
        for peer in peers:
            theirs = row.get(peer, {}).get(figure)
            if not isinstance(theirs, int | float):
                cells += ["error", "-"]
                continue
            cells.append(_fmt(theirs))
            if isinstance(ours, int | float) and ours and theirs:
                advantage = ours / theirs if higher else theirs / ours
                cells.append(f"{advantage:.2f}x {'better' if advantage >= 1 else 'worse'}")
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(_load_row(table, servers))
    limits = [f"* {peer}: {LIMITS[peer]}" for peer in peers if peer in LIMITS]
    targets = [
        "| target | measured (tidings) | met? |",
        "|---|---|---|",
    ]
    for case, (goal, how, text) in TARGETS.items():
        figure = CASES[case][2]
        ours = table.get(case, {}).get("tidings", {}).get(figure)
        if not isinstance(ours, int | float):
            targets.append(f"| {text} | error | - |")
            continue
        met = ours >= goal if how == "ge" else ours <= goal
        gap = (ours / goal - 1) * 100
        verdict = "yes" if met else f"no ({gap:+.0f} % against the target)"
        targets.append(f"| {text} | {_fmt(ours)} | {verdict} |")
    ahead = all(
        isinstance(row.get("tidings", {}).get(CASES[case][2]), int | float)
        for case, row in table.items()
    )
    return "\n".join(
        [
            f"Command: `{argv}`  ",
            f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
            f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), Linux {info['kernel']}, "
            f"Python {info['python']}, load average at the end {info['load_average_1m']}  ",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
            *([f"Load generator and pinning: {setup}  "] if setup else []),
            "",
            *lines,
            "",
            *([*limits, ""] if limits else []),
            "Targets (single process, one core):",
            "",
            *targets,
            "" if ahead else "\n(some runs failed; see benchmarks/results/compare-summary.json)",
        ]
    )


def markers(block: str = "") -> tuple[str, str]:
    """The begin and end markers of a generated block (the default one without a name)."""
    if not block:
        return BEGIN, END
    return f"<!-- compare:{block}:begin -->", f"<!-- compare:{block}:end -->"


def write_benchmarks_md(text: str, path: Path, block_name: str = "") -> None:
    """Replace the generated block of `path`, keeping the prose around it (or append it)."""
    begin, end = markers(block_name)
    block = f"{begin}\n{text}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in old and end in old:
        head, _, rest = old.partition(begin)
        _, _, tail = rest.partition(end)
        path.write_text(head + block + tail)
    else:
        path.write_text(old.rstrip("\n") + "\n\n" + block + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--peers", default="websockets,aiohttp,gohub")
    p.add_argument("--quick", action="store_true", help="2,000 connections, 3 s loads")
    p.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--from-json", type=Path, help="re-render a saved compare-summary.json")
    p.add_argument("--client", choices=CLIENTS, default="python", help="load generator")
    p.add_argument("--server-cpus", default="", help="pin every server (taskset -c list)")
    p.add_argument("--client-cpus", default="", help="pin the load generator")
    p.add_argument("--block", default="", help="name of the generated block to replace")
    args = p.parse_args(argv)
    machine.raise_nofile_limit()
    servers = ["tidings", *[s for s in args.peers.split(",") if s]]
    common = {
        "client": args.client,
        "server_cpus": args.server_cpus,
        "client_cpus": args.client_cpus,
    }
    for cpus in (args.server_cpus, args.client_cpus):
        machine.parse_cpus(cpus)  # a bad list fails here, not after the first run
    suffix = f"-{args.block}" if args.block else ""
    raw = ROOT / "benchmarks" / "results" / f"compare-summary{suffix}.json"
    if args.from_json:
        table = json.loads(args.from_json.read_text())
    else:
        table = uvloop.run(compare(servers, args.quick, common))
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps(results.summarised(table), indent=2, default=float) + "\n")
    command = ["python benchmarks/compare.py", *(argv if argv is not None else sys.argv[1:])]
    setup = f"--client {args.client}" + (
        f", server on CPUs {args.server_cpus}, load generator on CPUs {args.client_cpus}"
        if args.server_cpus or args.client_cpus
        else ", not pinned"
    )
    text = render(table, servers, " ".join(command), setup)
    write_benchmarks_md(text, args.output, args.block)
    print(text)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
