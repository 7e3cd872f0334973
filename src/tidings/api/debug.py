"""Debugging a live node through the server API (API key required, like every method).

- `debug_tasks`: every asyncio task of the node's loop: name, coroutine, and
  the stack where it waits.
- `debug_profile`: a CPU profile of the running node for `seconds` (at most
  60), either deterministic (`cProfile`, returned as pstats text plus the
  marshalled stats in base64 for `pstats.Stats`) or sampled (the loop's
  stack every few milliseconds, returned as a flame-graph SVG).
- `debug_memory`: the top allocations, by line, that happened during
  `seconds` (tracemalloc is started for the window and stopped after, unless
  it was already on).

A profile and a memory trace slow the node down while they run, so only one
of each runs at a time: a second call gets error 111 (try later).
"""

from __future__ import annotations

import asyncio
import base64
import cProfile
import io
import marshal
import pstats
import sys
import threading
import time
import tracemalloc
from collections import Counter
from types import FrameType
from typing import Annotated, Any

from msgspec import Meta, Struct

from tidings.api import flamegraph
from tidings.api.methods import Result, ServerApi
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode

MAX_SECONDS = 60.0
#: Seconds between two stack samples of the sampling profiler.
SAMPLE_INTERVAL = 0.005
MAX_STACK = 64

Seconds = Annotated[float, Meta(gt=0, le=MAX_SECONDS)]


class _Request(Struct, forbid_unknown_fields=True):
    pass


class TasksRequest(_Request):
    limit: Annotated[int, Meta(ge=1, le=100_000)] = 10_000
    #: Frames per task stack at most.
    depth: Annotated[int, Meta(ge=1, le=MAX_STACK)] = 16


class ProfileRequest(_Request):
    seconds: Seconds = 5.0
    #: "pstats" (cProfile) or "svg" (sampled flame graph).
    format: str = "pstats"
    #: Functions listed in the pstats text.
    limit: Annotated[int, Meta(ge=1, le=1000)] = 60
    sort: str = "cumulative"


class MemoryRequest(_Request):
    seconds: Annotated[float, Meta(ge=0, le=MAX_SECONDS)] = 5.0
    limit: Annotated[int, Meta(ge=1, le=1000)] = 30
    frames: Annotated[int, Meta(ge=1, le=32)] = 1


SORT_KEYS = ("cumulative", "tottime", "calls", "ncalls", "time")


class NodeDebugger:
    """The debug methods of one process (profilers are per process, so is the guard)."""

    def __init__(self) -> None:
        self._profiling = asyncio.Lock()
        self._tracing = asyncio.Lock()

    def install(self, api: ServerApi) -> None:
        api.register("debug_tasks", TasksRequest, self.tasks)
        api.register("debug_profile", ProfileRequest, self.profile)
        api.register("debug_memory", MemoryRequest, self.memory)

    # --- tasks -------------------------------------------------------------------------

    async def tasks(self, req: TasksRequest) -> Result:
        current = asyncio.current_task()
        tasks = sorted(asyncio.all_tasks(), key=lambda t: t.get_name())
        out: list[dict[str, Any]] = []
        for task in tasks[: req.limit]:
            coro = task.get_coro()
            out.append(
                {
                    "name": task.get_name(),
                    "coroutine": getattr(coro, "__qualname__", repr(coro)),
                    "current": task is current,
                    "stack": [_frame(f) for f in task.get_stack(limit=req.depth)],
                    "awaiting": _awaiting(coro),
                }
            )
        return {"total": len(tasks), "tasks": out}

    # --- CPU profile -------------------------------------------------------------------

    async def profile(self, req: ProfileRequest) -> Result:
        if req.format not in ("pstats", "svg"):
            raise ReplyError(ErrorCode.BAD_REQUEST, "format is pstats or svg")
        if req.sort not in SORT_KEYS:
            raise ReplyError(ErrorCode.BAD_REQUEST, f"sort is one of {', '.join(SORT_KEYS)}")
        if self._profiling.locked():
            raise ReplyError(ErrorCode.TOO_MANY_REQUESTS, "a profile is already running")
        async with self._profiling:
            if req.format == "svg":
                return await _sampled(req.seconds)
            return await _deterministic(req)

    # --- memory ------------------------------------------------------------------------

    async def memory(self, req: MemoryRequest) -> Result:
        if self._tracing.locked():
            raise ReplyError(ErrorCode.TOO_MANY_REQUESTS, "a memory trace is already running")
        async with self._tracing:
            started_here = not tracemalloc.is_tracing()
            if started_here:
                tracemalloc.start(req.frames)
            try:
                await asyncio.sleep(req.seconds)
                snapshot = tracemalloc.take_snapshot()
                current, peak = tracemalloc.get_traced_memory()
            finally:
                if started_here:
                    tracemalloc.stop()
        snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        key = "traceback" if req.frames > 1 else "lineno"
        stats = snapshot.statistics(key)
        top = [
            {
                "size": stat.size,
                "count": stat.count,
                "traceback": [f"{frame.filename}:{frame.lineno}" for frame in stat.traceback],
            }
            for stat in stats[: req.limit]
        ]
        return {
            "seconds": req.seconds,
            "traced_bytes": current,
            "peak_bytes": peak,
            "total_bytes": sum(stat.size for stat in stats),
            "top": top,
            "started_tracing": started_here,
        }


async def _deterministic(req: ProfileRequest) -> Result:
    """cProfile over the loop's thread: every coroutine step and callback it runs."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        await asyncio.sleep(req.seconds)
    finally:
        profiler.disable()
    profiler.create_stats()
    raw = marshal.dumps(profiler.stats)  # before pstats.Stats, which takes them away
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats(req.sort).print_stats(req.limit)
    return {
        "format": "pstats",
        "seconds": req.seconds,
        "text": text.getvalue(),
        "pstats_b64": base64.b64encode(raw).decode(),
    }


async def _sampled(seconds: float) -> Result:
    """Samples the loop thread's stack from a helper thread; folds them into an SVG."""
    loop_thread = threading.get_ident()
    samples: Counter[tuple[str, ...]] = Counter()
    done = threading.Event()

    def sample() -> None:
        deadline = time.monotonic() + seconds
        while not done.wait(SAMPLE_INTERVAL) and time.monotonic() < deadline:
            frame = sys._current_frames().get(loop_thread)
            if frame is not None:
                samples[_stack(frame)] += 1

    sampler = threading.Thread(target=sample, name="tidings-profile-sampler", daemon=True)
    sampler.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        done.set()
        await asyncio.to_thread(sampler.join)
    total = sum(samples.values())
    return {
        "format": "svg",
        "seconds": seconds,
        "samples": total,
        "svg": flamegraph.render(samples),
    }


def _stack(frame: FrameType | None) -> tuple[str, ...]:
    names: list[str] = []
    while frame is not None and len(names) < MAX_STACK * 2:
        code = frame.f_code
        module = frame.f_globals.get("__name__", "?")
        names.append(f"{module}.{code.co_qualname}:{frame.f_lineno}")
        frame = frame.f_back
    return tuple(reversed(names))


def _frame(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_qualname}"


def _awaiting(coro: Any) -> list[str]:
    """The chain of awaitables the coroutine is suspended on (innermost last)."""
    chain: list[str] = []
    current = getattr(coro, "cr_await", None)
    while current is not None and len(chain) < MAX_STACK:
        chain.append(getattr(current, "__qualname__", type(current).__name__))
        current = getattr(current, "cr_await", None)
    return chain
