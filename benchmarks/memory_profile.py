"""Where the memory of an idle connection goes: RSS, object types and allocation sites.

Usage::

    .venv/bin/python benchmarks/memory_profile.py [--conns 5000] [--channels 2] [--trace]

Starts a tidings server as a child process (this file with ``--serve``, the
same config as `tidings bench`: HS256 tokens with `exp`, personal channel
`#<user>` durable in SQLite), reads a baseline, opens `--conns` idle
authenticated connections subscribed to `--channels` channels each (the
bench worker's `room<k>` spread over 1000 rooms) and reads again after
`--settle` seconds. A reading is taken inside the server on SIGUSR1, after
`gc.collect()`:

- VmRSS (/proc/self/status);
- `gc.get_objects()` counts and `sys.getsizeof` bytes per type (GC-tracked
  objects only: no str, bytes, int);
- with ``--trace``, a tracemalloc snapshot (started before anything is
  imported, `--frames` frames per trace), compared by file:line and by the
  innermost tidings frame. Tracing itself costs memory: its RSS figure is
  inflated, run without ``--trace`` for the RSS per connection.

Prints the per-connection figures (delta / connections), largest first.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import pickle
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SERVE = "--serve"


# --- server side -------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _reading(out: Path, trace: bool) -> None:
    import gc

    gc.collect()
    counts: collections.Counter[str] = collections.Counter()
    sizes: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        name = f"{kind.__module__}.{kind.__qualname__}"
        counts[name] += 1
        with contextlib.suppress(TypeError):
            sizes[name] += sys.getsizeof(obj)
    data: dict[str, Any] = {"rss": _rss(), "counts": counts, "sizes": sizes}
    if trace:
        import tracemalloc

        data["snapshot"] = tracemalloc.take_snapshot()
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(data, fh)
    tmp.rename(out)


def serve(config: str, report_dir: Path, trace: bool, frames: int) -> None:
    if trace:
        import tracemalloc

        tracemalloc.start(frames)
    import logging

    import uvloop

    from tidings.config import load
    from tidings.server import Server, run

    settings = load(Path(config), os.environ, {})
    logging.basicConfig(level=settings.log_level.upper())
    server = Server(settings)
    readings = iter(range(1_000_000))

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            _reading(report_dir / f"reading-{next(readings)}.pickle", trace)

        loop.add_signal_handler(signal.SIGUSR1, on_signal)
        await run(server, banner=False)

    uvloop.run(main())


# --- driver side -------------------------------------------------------------------


async def _read(proc: asyncio.subprocess.Process, report_dir: Path, index: int) -> dict[str, Any]:
    path = report_dir / f"reading-{index}.pickle"
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no reading from the server")
        await asyncio.sleep(0.1)
    with open(path, "rb") as fh:  # noqa: ASYNC230 - a small local file
        reading: dict[str, Any] = pickle.load(fh)
    return reading


def _kb(value: float) -> str:
    return f"{value / 1024:8.3f}"


def _report(before: dict[str, Any], after: dict[str, Any], conns: int, top: int) -> dict[str, Any]:
    rss = (after["rss"] - before["rss"]) / conns
    print(f"\nRSS per connection: {rss / 1024:.2f} KB ({conns} connections)")
    summary: dict[str, Any] = {"conns": conns, "rss_kb_per_conn": rss / 1024}
    print("\nGC-tracked objects per connection (count, bytes by sys.getsizeof):")
    rows = []
    for name in set(after["counts"]) | set(before["counts"]):
        count = after["counts"][name] - before["counts"][name]
        size = after["sizes"][name] - before["sizes"][name]
        if count or size:
            rows.append((size / conns, count / conns, name))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    for size, count, name in rows[:top]:
        print(f"  {count:6.2f} x {name:60} {size:8.1f} B")
    print(f"  all GC-tracked: {total:.0f} B per connection")
    summary["gc_bytes_per_conn"] = total
    summary["gc_types"] = {name: [count, size] for size, count, name in rows[:top]}
    if "snapshot" in after:
        old, new = before["snapshot"], after["snapshot"]
        stats = new.compare_to(old, "lineno")
        traced = sum(s.size_diff for s in stats) / conns
        print(f"\ntracemalloc per connection: {traced:.0f} B; by file:line:")
        for stat in stats[:top]:
            frame = stat.traceback[0]
            print(
                f"  {stat.size_diff / conns:8.1f} B {stat.count_diff / conns:6.2f} blocks"
                f"  {frame.filename}:{frame.lineno}"
            )
        summary["traced_bytes_per_conn"] = traced
        by_tidings: collections.Counter[str] = collections.Counter()
        for stat in new.compare_to(old, "traceback"):
            where = next(
                (f"{f.filename}:{f.lineno}" for f in stat.traceback if "tidings" in f.filename),
                f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}",
            )
            by_tidings[where] += stat.size_diff
        print("\nby innermost tidings frame (needs --frames > 1):")
        for where, size in by_tidings.most_common(top):
            print(f"  {size / conns:8.1f} B  {where}")
    return summary


async def drive(args: argparse.Namespace) -> None:
    from tidings.bench.fleet import Fleet
    from tidings.bench.target import BENCH_API_KEY, HOST, Target, write_tidings_config

    workdir = Path(tempfile.mkdtemp(prefix="tidings-memprof-"))
    config = write_tidings_config(workdir)
    port, api_port, secret = config.port, config.api_port, config.secret
    argv = [sys.executable, __file__, SERVE, str(config.path), "--report-dir", str(workdir)]
    if args.trace:
        argv += ["--trace", "--frames", str(args.frames)]
    log = open(workdir / "server.log", "wb")  # noqa: ASYNC230, SIM115 - closed below
    proc = await asyncio.create_subprocess_exec(*argv, stdout=log, stderr=log)
    target = Target("tidings", port, f"http://{HOST}:{api_port}", BENCH_API_KEY, secret, proc=proc)
    try:
        await target.wait_ready()
        await asyncio.sleep(1.0)
        before = await _read(proc, workdir, 0)
        fleet = Fleet(HOST, port, args.conns, secret=secret, spread=args.channels)
        try:
            opened, failed, wall = await fleet.start()
            print(f"{opened} connections open ({failed} failed) in {wall:.1f}s", flush=True)
            await asyncio.sleep(args.settle)
            after = await _read(proc, workdir, 1)
        finally:
            await fleet.stop()
        summary = _report(before, after, max(opened, 1), args.top)
        summary["trace"] = args.trace
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")  # noqa: ASYNC240
    finally:
        await target.stop()
        log.close()
        print(f"server log and readings in {workdir}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == SERVE:
        p = argparse.ArgumentParser()
        p.add_argument("config")
        p.add_argument("--report-dir", type=Path, required=True)
        p.add_argument("--trace", action="store_true")
        p.add_argument("--frames", type=int, default=1)
        args = p.parse_args(sys.argv[2:])
        serve(args.config, args.report_dir, args.trace, args.frames)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conns", type=int, default=5000)
    p.add_argument("--channels", type=int, default=2, help="channels per connection")
    p.add_argument("--settle", type=float, default=3.0)
    p.add_argument("--trace", action="store_true", help="tracemalloc (inflates RSS)")
    p.add_argument("--frames", type=int, default=8, help="tracemalloc frames with --trace")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--json", help="write the summary here")
    args = p.parse_args()
    asyncio.run(drive(args))


if __name__ == "__main__":
    main()
