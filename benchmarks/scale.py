"""Scale runs: one worker against `tidings serve --workers N` at up to 100,000 connections.

Usage::

    python benchmarks/scale.py --runs 1:19000,2:38000,6:100000 --client go \\
        --server-cpus 0 --client-cpus 1

Each run is `workers:conns`; the first is the one-worker baseline (a plain
`tidings serve`, the memory engine). A run with N > 1 starts `tidings serve
--workers N` (a supervisor, N worker nodes sharing the ports, a private
redis-server between them) and is not pinned: its workers need every core.
`--server-cpus`/`--client-cpus` pin the one-worker runs only. Every run is one
`tidings bench scale`: the connections (each on "fan", a room and its personal
channel; idle memory per connection, connect rate, what holding them costs),
then on the same connections a fan-out of single messages and one of batches
of 25 sent with `"parallel": true` (deliveries per server CPU-second,
wall-clock deliveries/s; sequential batches pipeline their publications too
since issue 11's follow-up, see BENCHMARKS.md). Memory and
CPU are summed over the server's whole process tree; the redis-server's share
is reported apart.
JSONs and PNGs land in benchmarks/results/ (label `scale-w<N>-<client>`), the
summary in benchmarks/results/scale-summary.json, the table in BENCHMARKS.md
between `<!-- compare:scale:begin -->` and `<!-- compare:scale:end -->`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import write_benchmarks_md

from tidings.bench import machine, results
from tidings.bench.command import execute
from tidings.bench.fleet import CLIENTS
from tidings.bench.scenarios import Options

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

#: The parts of a `scale` run: idle connections, then the two fan-outs.
CASES = ("idle", "single", "coalesced")
#: Options of every run apart from size and pinning. The settle is over 20 s: one
#: refresh of the Redis entries (every entry_ttl / 3) falls in it.
OPTIONS = Options(
    channels=2, settle=25.0, rate=2, seconds=8, batch=25, sample_every=200, parallel=True
)
#: Each run gets at most this long (connects of 100k on a shared machine).
RUN_LIMIT_S = 1800.0


def parse_runs(text: str) -> list[tuple[int, int]]:
    """`"1:19000,6:100000"` -> [(1, 19000), (6, 100000)]: workers and connections per run."""
    runs = []
    for part in text.split(","):
        workers, sep, conns = part.strip().partition(":")
        if not sep or not workers.isdigit() or not conns.isdigit():
            raise ValueError(f"bad run {part!r}: workers:connections, e.g. 6:100000")
        if int(workers) < 1 or int(conns) < 1:
            raise ValueError(f"bad run {part!r}: at least one worker and one connection")
        runs.append((int(workers), int(conns)))
    if not runs:
        raise ValueError("no runs")
    return runs


async def run_one(
    workers: int, conns: int, common: dict[str, Any], say: Any
) -> dict[str, dict[str, Any]]:
    """One `scale` run: its idle, single and coalesced rows."""
    pinned = common if workers == 1 else {**common, "server_cpus": "", "client_cpus": ""}
    opts = replace(OPTIONS, conns=conns, server_workers=workers, **pinned)
    record = await asyncio.wait_for(execute("scale", opts, say=say), RUN_LIMIT_S)
    record["label"] = f"scale-w{workers}-{opts.client}"
    json_path, png_path = results.save("scale", record, RESULTS)
    say(f"wrote {json_path.relative_to(ROOT)}")
    rows: dict[str, dict[str, Any]] = {}
    for case in CASES:
        row = {k: v for k, v in record["result"][case].items() if not isinstance(v, dict)}
        row["load_average"] = record["load_average"]
        row["pinning"] = record["pinning"]
        row["json"] = json_path.name
        row["png"] = png_path.name if png_path is not None else ""
        rows[case] = row
    await asyncio.sleep(3.0)  # TIME_WAIT and CPU settle between runs
    return rows


async def scale(runs: list[tuple[int, int]], common: dict[str, Any]) -> dict[str, Any]:
    t0 = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {message}", flush=True)

    table: dict[str, Any] = {
        "runs": [f"{w}:{c}" for w, c in runs],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cases": {},
    }
    for workers, conns in runs:
        key = f"{workers}:{conns}"
        say(f"== {workers} worker(s), {conns:,} connections")
        try:
            table["cases"][key] = await run_one(workers, conns, common, say)
        except Exception as exc:  # one failing run must not lose the others
            say(f"   failed: {type(exc).__name__}: {exc}")
            table["cases"][key] = {
                case: {"error": f"{type(exc).__name__}: {exc}"} for case in CASES
            }
    return table


def _num(value: Any, digits: int = 0) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(ours: Any, base: Any) -> float | None:
    if isinstance(ours, int | float) and isinstance(base, int | float) and base:
        return float(ours) / float(base)
    return None


def _loads(row: dict[str, Any]) -> str:
    load = row.get("load_average") or {}
    if not load:
        return "-"
    return f"{load['min']:.1f}-{load['max']:.1f}"


#: (row title, case, figure, digits)
FIGURES = [
    ("connections held", "idle", "conns", 0),
    ("connections per worker (from `info`)", "idle", "clients_per_node", 0),
    ("RSS growth per connection, KB (all processes)", "idle", "kb_per_conn", 2),
    ("RSS of all processes / connections, KB", "idle", "kb_per_conn_total", 2),
    ("RSS of all processes after connecting, MB", "idle", "rss_after_mb", 0),
    ("of which redis-server, MB", "idle", "redis_rss_mb", 1),
    ("connects/s (wall clock)", "idle", "connects_per_s", 0),
    ("connects per server CPU-second", "idle", "connects_per_server_cpu_s", 0),
    ("server CPU holding them idle (cores)", "idle", "idle_server_cpu_share", 2),
    ("connections lost while held", "idle", "lost", 0),
    ("single messages: deliveries per server CPU-second", "single", "deliveries_per_cpu_s", 0),
    ("single messages: deliveries/s (wall clock)", "single", "deliveries_per_s", 0),
    ("single messages: every delivery arrived", "single", "exact", 0),
    (
        "coalesced (25/call): deliveries per server CPU-second",
        "coalesced",
        "deliveries_per_cpu_s",
        0,
    ),
    ("coalesced (25/call): deliveries/s (wall clock)", "coalesced", "deliveries_per_s", 0),
    ("coalesced (25/call): every delivery arrived", "coalesced", "exact", 0),
]


def _cell(row: dict[str, Any], figure: str, digits: int) -> str:
    if "error" in row:
        return "error"
    value = row.get(figure)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return f"{min(value):,}-{max(value):,}" if value else "-"
    return _num(value, digits)


def _verdicts(table: dict[str, Any], runs: list[tuple[int, int]], cores: int) -> list[str]:
    base_key = f"{runs[0][0]}:{runs[0][1]}"
    base = {case: table["cases"][base_key].get(case, {}) for case in CASES}
    lines = ["| target | run | measured | goal | met? |", "|---|---|---|---|---|"]
    for workers, conns in runs:
        key = f"{workers}:{conns}"
        rows = {case: table["cases"][key].get(case, {}) for case in CASES}
        name = f"{workers} worker{'s' if workers > 1 else ''}, {conns:,}"
        for figure, what in (
            ("kb_per_conn", "RSS growth of all processes / connections"),
            ("kb_per_conn_total", "RSS of all processes / connections"),
        ):
            kb = rows["idle"].get(figure)
            if isinstance(kb, int | float):
                verdict = "yes" if kb <= 10 else "no"
                lines.append(
                    f"| <= 10 KB per connection ({what}) | {name} | {kb:.2f} KB | 10 KB "
                    f"| {verdict} |"
                )
        if workers == runs[0][0]:
            continue
        rate = rows["idle"].get("connects_per_s")
        base_rate = base["idle"].get("connects_per_s")
        if isinstance(rate, int | float) and isinstance(base_rate, int | float):
            goal = workers * 0.8 * base_rate
            core_goal = min(workers, cores) * 0.8 * base_rate
            verdict = "yes" if rate >= goal else f"no ({rate / goal:.0%} of it)"
            lines.append(
                f"| connect rate >= N x 0.8 x one worker | {name} | {rate:,.0f}/s "
                f"| {goal:,.0f}/s (with {cores} cores: {core_goal:,.0f}/s) | {verdict} |"
            )
        for case in ("single", "coalesced"):
            ratio = _ratio(
                rows[case].get("deliveries_per_cpu_s"), base[case].get("deliveries_per_cpu_s")
            )
            if ratio is not None:
                verdict = "yes" if ratio >= 0.9 else "no"
                lines.append(
                    f"| {case} fan-out per server CPU-second >= 90 % of one worker | {name} "
                    f"| {ratio:.0%} | 90 % | {verdict} |"
                )
    return lines


def render(table: dict[str, Any], argv: str) -> str:
    """The BENCHMARKS.md block: figures per run, then the targets (`argv` unless the
    table records the command that made it)."""
    argv = table.get("command") or argv
    runs = parse_runs(",".join(table["runs"]))
    info = machine.description()
    heads = [f"{w} worker{'s' if w > 1 else ''}, {c:,} conns" for w, c in runs]
    lines = [
        "| figure | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for title, case, figure, digits in FIGURES:
        cells = [_cell(table["cases"][f"{w}:{c}"].get(case, {}), figure, digits) for w, c in runs]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    cells = [_loads(table["cases"][f"{w}:{c}"].get("idle", {})) for w, c in runs]
    lines.append(
        "| load average (1 min) during the run, lowest-highest | " + " | ".join(cells) + " |"
    )
    cells = []
    for w, c in runs:
        png = table["cases"][f"{w}:{c}"].get("idle", {}).get("png", "")
        cells.append(f"[plot](benchmarks/results/{png})" if png else "-")
    lines.append("| plots: RSS while connecting, deliveries/s | " + " | ".join(cells) + " |")
    return "\n".join(
        [
            f"Command: `{argv}`  ",
            f"Date: {table.get('date') or time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
            f"Machine: {info['nproc']} CPUs ({info['cpu_model']}), Linux {info['kernel']}, "
            f"Python {info['python']}, {info['nofile_hard_limit']:,} descriptors per process  ",
            "",
            *lines,
            "",
            *_verdicts(table, runs, info["nproc"]),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", default="1:19000,6:100000", help="workers:conns, first = baseline")
    p.add_argument("--client", choices=CLIENTS, default="go", help="load generator")
    p.add_argument("--server-cpus", default="", help="pin one-worker servers (taskset -c list)")
    p.add_argument("--client-cpus", default="", help="pin the load generator of those runs")
    p.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--block", default="scale", help="name of the generated block to replace")
    p.add_argument("--from-json", type=Path, help="re-render a saved scale-summary.json")
    args = p.parse_args(argv)
    runs = parse_runs(args.runs)
    for cpus in (args.server_cpus, args.client_cpus):
        machine.parse_cpus(cpus)  # a bad list fails here, not after the first run
    machine.raise_nofile_limit()
    raw = RESULTS / f"{args.block}-summary.json"
    if args.from_json:
        table = json.loads(args.from_json.read_text())
    else:
        common = {
            "client": args.client,
            "server_cpus": args.server_cpus,
            "client_cpus": args.client_cpus,
        }
        table = uvloop.run(scale(runs, common))
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps(table, indent=2, default=float) + "\n")
    command = ["python benchmarks/scale.py", *(argv if argv is not None else sys.argv[1:])]
    if not args.from_json:
        table["command"] = " ".join(command)
        raw.write_text(json.dumps(table, indent=2, default=float) + "\n")
    text = render(table, " ".join(command))
    write_benchmarks_md(text, args.output, args.block)
    print(text)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
