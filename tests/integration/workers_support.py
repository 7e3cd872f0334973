"""`tidings serve --workers N` under test: start a supervisor, find its processes in /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import OPEN_CHANNEL, ServerProcess, _spawn, _wait_ready, start_server
from tests.integration.cluster_support import HEARTBEAT, wait_for
from tests.integration.support.api import api_call
from tests.integration.support.sdk import TIMEOUT, Conn, Recorder

#: Seconds a supervisor has to get every worker listening (several Python
#: processes starting at once on a loaded 2-core machine).
READY_WITHIN = 60.0

#: Open channels, a durable namespace `d`, fast heartbeats (so `info` is current).
WORKER_SETTINGS: dict[str, Any] = {
    "channel": OPEN_CHANNEL,
    "namespaces": {"d": {**OPEN_CHANNEL, "durable": True, "history_size": 1000}},
    "shutdown_timeout": 3.0,
    **HEARTBEAT,
}


def wait_ready(server: ServerProcess, skip: int = 0) -> None:
    """Wait for the supervisor's "tidings ready" (printed once every worker listens)."""
    _wait_ready(server, skip, READY_WITHIN)


def start_supervisor(
    tmp_path: Path, settings: dict[str, Any], args: list[str] | None = None
) -> ServerProcess:
    """`tidings serve` with `settings` (give `workers` there or in `args`) on free ports."""
    return start_server(tmp_path, settings, args, READY_WITHIN)


def restart_supervisor(server: ServerProcess) -> ServerProcess:
    """SIGTERM, then the same config file again (`workers` must be in it)."""
    assert server.config_path is not None
    assert server.stop(signal.SIGTERM, 30) == 0, server.log()
    skip = len(server.log())
    server.proc = _spawn(server.config_path, server.log_path)
    wait_ready(server, skip)
    return server


@pytest.fixture
def supervisors(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start supervisors; after the test each is stopped and none of its processes is left."""
    started: list[tuple[ServerProcess, list[int]]] = []

    def factory(settings: dict[str, Any], args: list[str] | None = None) -> ServerProcess:
        server = start_supervisor(tmp_path, settings, args)
        started.append((server, descendants(server.proc.pid)))
        return server

    yield factory
    for server, children in started:
        with contextlib.suppress(Exception):
            server.stop(signal.SIGTERM, 30)
        for pid in children + descendants(server.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# --- processes, from /proc ---------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of `pid`, None if it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children, their children, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] != "Z":
                parents.setdefault(stat[1], []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def worker_pids(server: ServerProcess) -> dict[str, int]:
    """Node name -> pid of the supervisor's live workers."""
    out: dict[str, int] = {}
    for pid in descendants(server.proc.pid):
        args = cmdline(pid)
        if "tidings.workers.worker" in args and "--name" in args:
            out[args[args.index("--name") + 1]] = pid
    return out


def redis_pids(server: ServerProcess) -> list[int]:
    return [p for p in descendants(server.proc.pid) if "redis-server" in (cmdline(p) or [""])[0]]


async def wait_gone(pids: list[int], within: float = 30.0) -> None:
    """Wait until none of `pids` runs; fail naming those that still do."""
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            left = {p: cmdline(p) for p in pids if alive(p)}
            raise AssertionError(f"processes left running: {left}")
        await asyncio.sleep(0.05)


async def clients_by_node(server: ServerProcess) -> dict[str, int]:
    """Node name -> clients it holds, as `info` reports (heartbeats of the other workers)."""
    info = await api_call(server, "info", {})
    return {node["name"]: node["num_clients"] for node in info["nodes"]}


async def spread_clients(
    server: ServerProcess,
    connect: Callable[..., Any],
    channel: str,
    count: int = 9,
    **client_kwargs: Any,
) -> tuple[list[Conn], list[Recorder], dict[str, int]]:
    """`count` subscribed clients (more until they sit on two workers at least)."""
    conns: list[Conn] = []
    recs: list[Recorder] = []
    by_node: dict[str, int] = {}
    while len(conns) < 30:
        for _ in range(count if not conns else 3):
            conn = await connect(f"u{len(conns)}", **client_kwargs)
            _, rec = await conn.subscribed(channel)
            conns.append(conn)
            recs.append(rec)

        async def counted() -> dict[str, int] | None:
            found = await clients_by_node(server)
            return found if sum(found.values()) == len(conns) else None

        by_node = await wait_for(counted, f"info to count {len(conns)} clients", TIMEOUT)
        if sum(1 for n in by_node.values() if n) >= 2:
            break
    assert sum(1 for n in by_node.values() if n) >= 2, by_node
    return conns, recs, by_node
