"""`tidings serve --workers N` when things die: a worker, the supervisor, a crash loop.

A worker killed with SIGKILL is restarted; its clients reconnect to the other
workers and recover what was published meanwhile. A worker that keeps dying
is restarted after delays that double. A supervisor killed with SIGKILL takes
its workers and redis-server with it, and what it left in data_dir (socket,
pid file, even a redis-server still running) does not stop the next start. A
second supervisor on the same data_dir, and a machine without redis-server,
get one clear error each.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, _spawn
from tests.integration.cluster_support import wait_for
from tests.integration.support.api import api_call, api_raw
from tests.integration.support.sdk import TIMEOUT, connecting
from tests.integration.workers_support import (
    WORKER_SETTINGS,
    alive,
    clients_by_node,
    descendants,
    redis_pids,
    spread_clients,
    start_supervisor,
    supervisors,  # noqa: F401  (fixture)
    wait_gone,
    wait_ready,
    worker_pids,
)
from tidings.testing.redis import RedisServer
from tidings.workers.private_redis import PrivateRedis, ping

ROOT = Path(__file__).resolve().parents[2]


async def wait_log(server: ServerProcess, pattern: str, count: int = 1) -> list[str]:
    """The first `count` matches of the regex `pattern` in the server's log (waits for them)."""

    async def found() -> list[str] | None:
        matches = re.findall(pattern, server.log())
        return matches[:count] if len(matches) >= count else None

    result: list[str] = await wait_for(found, f"{count} x {pattern!r} in the log", TIMEOUT * 2)
    return result


async def test_killed_worker_is_restarted_and_its_clients_recover(
    supervisors: Callable[..., ServerProcess],  # noqa: F811
) -> None:
    srv = supervisors({**WORKER_SETTINGS, "name": "tw"}, ["--workers", "3"])
    async with connecting(srv) as connect:
        conns, recs, by_node = await spread_clients(
            srv, connect, "news", min_reconnect_delay=0.1, max_reconnect_delay=0.5
        )
        for n in range(2):
            await api_call(srv, "publish", {"channel": "news", "data": {"n": n}})
        for rec in recs:
            await rec.wait("publication", count=2, within=TIMEOUT)
        victim = max(by_node, key=lambda name: by_node[name])
        old_pid = worker_pids(srv)[victim]
        os.kill(old_pid, signal.SIGKILL)
        await wait_log(srv, f"worker {victim} killed by signal 9 after [0-9.]+ s; restart 1 in")
        # Published while the victim's clients are away: they recover it on return.
        for n in range(2, 5):
            await api_call(srv, "publish", {"channel": "news", "data": {"n": n}})
        for rec in recs:
            pubs = await rec.wait("publication", count=5, within=TIMEOUT)
            assert [p.pub.data["n"] for p in pubs] == list(range(5))
            assert [p.pub.offset for p in pubs] == [1, 2, 3, 4, 5]
        moved = [c for c in conns if any(ctx.code != 0 for ctx in c.rec.of("connecting"))]
        assert len(moved) == by_node[victim]
        for conn in moved:
            assert len(conn.rec.of("connected")) == 2
        for rec in recs:
            assert len(rec.of("publication")) == 5  # nothing twice

    await wait_log(srv, rf"worker {victim} \(pid \d+\) ready", count=2)
    new_pid = worker_pids(srv)[victim]
    assert new_pid != old_pid and alive(new_pid)

    async def listed_again() -> bool:
        return victim in await clients_by_node(srv)

    await wait_for(listed_again, f"{victim} back in info", TIMEOUT)


async def test_a_crash_loop_is_slowed_down_by_doubling_delays(
    supervisors: Callable[..., ServerProcess],  # noqa: F811
) -> None:
    srv = supervisors({**WORKER_SETTINGS, "name": "tw"}, ["--workers", "2"])
    bystander = worker_pids(srv)["tw-w2"]
    kills = 3
    for k in range(kills):
        await wait_log(srv, r"worker tw-w1 \(pid \d+\) ready", count=k + 1)
        os.kill(worker_pids(srv)["tw-w1"], signal.SIGKILL)
        await wait_log(srv, r"worker tw-w1 killed by signal 9", count=k + 1)
    await wait_log(srv, r"worker tw-w1 \(pid \d+\) ready", count=kills + 1)
    restarts = re.findall(r"worker tw-w1 killed .*; restart (\d+) in ([0-9.]+) s", srv.log())
    assert [int(n) for n, _ in restarts] == [1, 2, 3]
    assert [float(delay) for _, delay in restarts] == [0.25, 0.5, 1.0]
    assert worker_pids(srv)["tw-w2"] == bystander
    assert "tw-w2 killed" not in srv.log()


async def test_a_killed_private_redis_server_is_restarted_with_durable_history_intact(
    supervisors: Callable[..., ServerProcess],  # noqa: F811
) -> None:
    srv = supervisors({**WORKER_SETTINGS, "name": "tw"}, ["--workers", "2"])
    for n in range(3):
        await api_call(srv, "publish", {"channel": "d:log", "data": {"n": n}})
    (old,) = redis_pids(srv)
    os.kill(old, signal.SIGKILL)
    await wait_log(srv, r"private redis-server died \(restart 1\)")

    async def publish_again() -> dict[str, object] | None:
        body = await api_raw(srv, "publish", {"channel": "d:log", "data": {"n": 3}})
        return body.get("result")

    published = await wait_for(publish_again, "a publish on the restarted redis-server", TIMEOUT)
    assert published["offset"] == 4
    history = await api_call(srv, "history", {"channel": "d:log", "limit": -1})
    assert [p["data"]["n"] for p in history["publications"]] == [0, 1, 2, 3]
    assert redis_pids(srv) != [old]
    assert srv.stop(signal.SIGTERM, 30) == 0


def test_workers_that_cannot_start_stop_the_supervisor_with_their_error(
    tmp_path: Path, redis_factory: Callable[..., RedisServer]
) -> None:
    volatile = redis_factory()  # no append-only file: durable personal channels refuse it
    settings = {**WORKER_SETTINGS, "engine": "redis", "redis_address": [volatile.url]}
    with pytest.raises(RuntimeError) as info:
        start_supervisor(tmp_path, settings, ["--workers", "2"])
    message = str(info.value)
    assert "tidings serve exited 2" in message
    assert "durable_allow_volatile" in message
    assert "while starting" in message


def _stale_socket(path: Path) -> None:
    """A socket file nobody listens on, as a killed process leaves it."""
    path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))


def _stray_redis(private: PrivateRedis) -> subprocess.Popen[bytes]:
    """A redis-server working in the private directory, as if its supervisor had died."""
    args = ["--port", "0", "--dir", str(private.directory), "--save", ""]
    args += ["--unixsocket", str(private.socket_path), "--pidfile", str(private.pid_path)]
    return subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL)


def _make_serve(flags: str, log_path: Path) -> subprocess.Popen[str]:
    """`make serve ARGS=...` in the repository, in a process group of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    with log_path.open("w") as log:
        # -o: an installed venv counts as up to date (a clean clone's `make serve` builds it).
        return subprocess.Popen(
            ["make", "-s", "-o", ".venv/.installed", "serve", f"ARGS={flags}"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            text=True,
        )


def _serve(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidings", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_a_second_supervisor_on_the_same_data_dir_or_ports_is_refused(
    supervisors: Callable[..., ServerProcess],  # noqa: F811
    tmp_path: Path,
) -> None:
    srv = supervisors({**WORKER_SETTINGS, "name": "tw", "workers": 2})
    private = PrivateRedis(tmp_path / "data", durable=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    ports = ["--port", "0", "--api-port", "0", "--api-insecure"]
    second = _serve(["--workers", "2", "--data-dir", str(tmp_path / "data"), *ports], env)
    assert second.returncode == 2
    assert "in use by another tidings supervisor" in second.stderr
    assert ping(private.socket_path)
    # So is one on the same ports (SO_REUSEPORT would let it take half of the connections).
    same_ports = ["--port", str(srv.port), "--api-port", str(srv.api_port), "--api-insecure"]
    same_ports += ["--address", "127.0.0.1", "--data-dir", str(tmp_path / "other")]
    third = _serve(["--workers", "2", *same_ports], env)
    assert third.returncode == 1
    assert "cannot listen" in third.stderr
    assert len(worker_pids(srv)) == 2 and srv.proc.poll() is None


async def test_kill_9_of_the_supervisor_leaves_nothing_that_blocks_the_next_start(
    supervisors: Callable[..., ServerProcess],  # noqa: F811
    tmp_path: Path,
) -> None:
    srv = supervisors({**WORKER_SETTINGS, "name": "tw", "workers": 2})
    data_dir = tmp_path / "data"
    private = PrivateRedis(data_dir, durable=False)
    children = descendants(srv.proc.pid)
    assert len(children) == 3
    srv.proc.kill()
    srv.proc.wait()
    await wait_gone(children)  # the parent-death signal reached workers and redis-server

    # What a killed run may leave: a dead socket, a pid file naming a live process
    # that is not redis (this one), then a redis-server still running in the directory.
    _stale_socket(private.socket_path)
    private.pid_path.write_text(f"{os.getpid()}\n")
    skip = len(srv.log())
    srv.proc = _spawn(srv.config_path or Path(), srv.log_path)
    wait_ready(srv, skip)
    assert await api_call(srv, "publish", {"channel": "news", "data": {}}) is not None
    assert srv.stop(signal.SIGTERM, 30) == 0

    stray = _stray_redis(private)
    try:

        async def stray_up() -> bool:
            return ping(private.socket_path)

        await wait_for(stray_up, "the stray redis-server", TIMEOUT)
        skip = len(srv.log())
        srv.proc = _spawn(srv.config_path or Path(), srv.log_path)
        # The stray is this process's child: reap it while the supervisor starts.
        _, code = await asyncio.gather(
            asyncio.to_thread(wait_ready, srv, skip), asyncio.to_thread(stray.wait, 60)
        )
        assert code == -signal.SIGKILL
        assert f"stopping redis-server {stray.pid} left by a previous run" in srv.log()
        assert len(worker_pids(srv)) == 2
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()


def test_without_redis_server_one_clear_error_names_the_package(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    args = ["--workers", "2", "--port", "0", "--api-port", "0", "--api-insecure"]
    done = _serve([*args, "--data-dir", str(tmp_path / "data")], {"PATH": str(bare)})
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("tidings:")]
    assert len(errors) == 1, done.stderr
    assert "apt-get install redis-server" in errors[0]
    assert "Traceback" not in done.stderr


def _start_make_serve(tmp_path: Path) -> ServerProcess:
    """`make serve ARGS="--workers 2 ..."` on free ports (new ones if another process took them)."""
    for attempt in range(4):
        port, api_port = _free_ports()
        flags = (
            f"--workers 2 --address 127.0.0.1 --port {port} --api-port {api_port} "
            f"--api-insecure --data-dir {tmp_path / 'data'} --node-heartbeat-interval 0.2 "
            "--node-heartbeat-timeout 1.5 --name mk"
        )
        log_path = tmp_path / f"make-{attempt}.log"
        srv = ServerProcess(_make_serve(flags, log_path), port, api_port, log_path)
        try:
            wait_ready(srv)
        except RuntimeError as exc:
            if "address already in use" not in str(exc).lower() or attempt == 3:
                raise
            continue
        return srv
    raise AssertionError("unreachable")


async def test_make_serve_with_workers_2(tmp_path: Path) -> None:
    srv = _start_make_serve(tmp_path)
    make = srv.proc
    try:
        processes = descendants(make.pid)

        async def both() -> bool:
            return sorted(await clients_by_node(srv)) == ["mk-w1", "mk-w2"]

        await wait_for(both, "both workers in info", TIMEOUT)
        os.killpg(make.pid, signal.SIGTERM)
        await asyncio.to_thread(make.wait, 30)
        await wait_gone(processes)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()


def _free_ports() -> tuple[int, int]:
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        return int(a.getsockname()[1]), int(b.getsockname()[1])
