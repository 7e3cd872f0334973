"""The server under test: a `tidings serve` process started here, a peer, or a given URL."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tidings.bench.machine import (
    REDIS_COMMAND,
    START_AFFINITY,
    command_name,
    kill_leftovers,
    process_tree,
    start_time,
)

HOST = "127.0.0.1"
WS_PATH = "/connection/websocket"
BENCH_API_KEY = "benchkey"
_PR_SET_PDEATHSIG = 1


#: Settings of every node of a cluster the bench starts (workers or separate nodes): on a
#: shared 2-core machine a node's loop can wait over a second for a CPU, which the
#: default 1 s Redis command timeout reads as an unreachable Redis (a connect fails, is
#: retried, and the extra load makes more of them fail). The bench's Redis keeps nothing
#: (no append-only file with fsync always for the durable personal channels): the runs
#: measure throughput, as with `--redis-address`.
CLUSTER_SETTINGS: dict[str, Any] = {"redis_command_timeout": 10.0, "durable_allow_volatile": True}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the bench process dies, so no server outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def child_setup(cpus: frozenset[int] = frozenset()) -> Callable[[], None]:
    """A `preexec_fn`: die with the bench process, and run on `cpus` (all if empty)."""

    def setup() -> None:
        _die_with_parent()
        # Without a choice, the CPUs the bench started with: not the client CPUs it
        # may have pinned itself to since.
        os.sched_setaffinity(0, cpus or START_AFFINITY)

    return setup


async def stop_process(
    proc: asyncio.subprocess.Process, limit_s: float = 10.0, *, terminate: bool = True
) -> None:
    """SIGTERM `proc` (unless it was asked to quit otherwise) and wait; SIGKILL after `limit_s`."""
    if proc.returncode is not None:
        return
    if terminate:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), limit_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


def bench_config(
    *,
    port: int,
    api_port: int,
    api_key: str,
    secret: str,
    data_dir: Path,
    namespaces: dict[str, dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> str:
    """A config for load: no per-IP, per-user or per-command limits (plus `extra` settings)."""
    top: dict[str, Any] = {
        "address": HOST,
        "port": port,
        "api_address": HOST,
        "api_port": api_port,
        "api_key": api_key,
        "token_hmac_secret": secret,
        "connection_rate_per_ip": 0,
        "client_connections_per_ip": 0,
        "user_connection_limit": 0,
        "client_command_rate": 0,
        "data_dir": str(data_dir),
        "log_level": "warning",
        **(extra or {}),
    }
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    lines += ["", "[channel]", "allow_subscribe_for_client = true"]
    for name, options in namespaces.items():
        lines += ["", f"[namespaces.{name}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in options.items()]
    return "\n".join(lines) + "\n"


@dataclass
class Target:
    """Where the load goes, and (when started here) the process to measure."""

    name: str
    ws_port: int
    api_url: str
    api_key: str = ""
    secret: str = ""
    host: str = HOST
    ws_path: str = WS_PATH
    proc: asyncio.subprocess.Process | None = None
    workdir: Path | None = None
    log_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Processes the server needs (a redis-server), measured with it and stopped after it.
    companions: list[asyncio.subprocess.Process] = field(default_factory=list)
    #: Cluster nodes the server is made of (`tidings serve --workers N`): ready when the
    #: `info` API lists them all.
    nodes: int = 1
    #: Every client port when the nodes do not share one (else just `ws_port`).
    ws_ports: list[int] = field(default_factory=list)

    @property
    def client_ports(self) -> list[int]:
        return self.ws_ports or [self.ws_port]

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def pids(self) -> list[int]:
        """The server's process and its companions: what memory and CPU are read from
        (with every process they start: workers, a private redis-server)."""
        if self.proc is None:
            return []
        return [self.proc.pid, *(c.pid for c in self.companions)]

    async def wait_ready(self, limit_s: float = 30.0) -> None:
        deadline = time.monotonic() + limit_s
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(self.api_url + "/health") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if self.proc is not None and self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} not ready within {limit_s}s")
                await asyncio.sleep(0.1)
        # Each `info` goes to any node (the API port is shared), which lists the others
        # it has heard from: all of them, several times in a row.
        in_a_row = 0
        while in_a_row < 3 * self.nodes and self.nodes > 1:
            if len(await self.node_info()) >= self.nodes:
                in_a_row += 1
                continue
            in_a_row = 0
            if self.proc is not None and self.proc.returncode is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: not all {self.nodes} nodes up in {limit_s}s")
            await asyncio.sleep(0.2)
        # The client port too.
        while True:
            try:
                _r, writer = await asyncio.open_connection(self.host, self.ws_port)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return

    async def node_info(self) -> list[dict[str, Any]]:
        """The nodes the `info` API lists (one per worker), [] if it does not answer."""
        headers = {"X-API-Key": self.api_key}
        try:
            async with (
                aiohttp.ClientSession(headers=headers) as http,
                http.post(self.api_url + "/api/info", data=b"{}") as resp,
            ):
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, ValueError):
            return []
        nodes = body.get("result", {}).get("nodes", []) if isinstance(body, dict) else []
        return [n for n in nodes if isinstance(n, dict)]

    async def clients_per_node(self, clients: int, limit_s: float = 10.0) -> list[int]:
        """Clients each node holds, once the nodes' heartbeats add up to `clients` (or
        what they say after `limit_s`)."""
        deadline = time.monotonic() + limit_s
        while True:
            counts = sorted(int(n.get("num_clients", 0)) for n in await self.node_info())
            if len(counts) >= self.nodes and sum(counts) == clients:
                return counts
            if time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.5)

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_bytes()[-2000:].decode(errors="replace")

    async def stop(self) -> None:
        started = []
        for pid in (p for root in self.pids for p in process_tree(root)):
            with contextlib.suppress(OSError, ValueError, IndexError):
                started.append((pid, start_time(pid)))
        # The servers at once (workers drain their clients: more time with more of
        # them), then what they use (a redis-server), which they may need until then.
        redis = [c for c in self.companions if command_name(c.pid) == REDIS_COMMAND]
        servers = [p for p in (self.proc, *self.companions) if p is not None and p not in redis]
        await asyncio.gather(*(stop_process(p, 15.0 + 5.0 * self.nodes) for p in servers))
        await asyncio.gather(*(stop_process(p, 10.0) for p in redis))
        # What the server started and left behind (a worker, a redis-server) goes too.
        kill_leftovers(started)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


async def launch(
    name: str,
    argv: list[str],
    workdir: Path,
    *,
    ws_port: int,
    api_port: int,
    secret: str,
    ws_path: str = WS_PATH,
    cpus: frozenset[int] = frozenset(),
    companions: list[asyncio.subprocess.Process] | None = None,
    env: dict[str, str] | None = None,
    nodes: int = 1,
) -> Target:
    """Start `argv` (logging to `workdir`/server.log) and wait until it answers
    (with all its `nodes`)."""
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log:  # noqa: ASYNC230 - a moment, before the server runs
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=child_setup(cpus),
            env=None if env is None else {**os.environ, **env},
        )
    target = Target(
        name=name,
        ws_port=ws_port,
        api_url=f"http://{HOST}:{api_port}",
        api_key=BENCH_API_KEY,
        secret=secret,
        ws_path=ws_path,
        proc=proc,
        workdir=workdir,
        log_path=log_path,
        companions=companions or [],
        nodes=nodes,
    )
    try:
        await target.wait_ready(30.0 + 5.0 * nodes)
    except BaseException:
        await target.stop()
        raise
    return target


async def spawn(
    name: str,
    argv: list[str],
    ws_port: int,
    api_port: int,
    *,
    ws_path: str = WS_PATH,
    cpus: frozenset[int] = frozenset(),
    env: dict[str, str] | None = None,
) -> Target:
    """Start `argv` (a server listening on the two ports) and wait until it answers."""
    workdir = Path(tempfile.mkdtemp(prefix=f"tidings-bench-{name}-"))
    return await launch(
        name,
        argv,
        workdir,
        ws_port=ws_port,
        api_port=api_port,
        secret="bench-peers-do-not-verify-tokens-anyway",
        ws_path=ws_path,
        cpus=cpus,
        env=env,
    )


@dataclass(frozen=True, slots=True)
class TidingsConfig:
    """A load config written for `tidings serve`: its free ports, secret and file."""

    port: int
    api_port: int
    secret: str
    path: Path


def write_tidings_config(
    workdir: Path,
    namespaces: dict[str, dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    secret: str = "",
) -> TidingsConfig:
    """`workdir`/tidings.toml on free loopback ports, `secret` (or a fresh one), data
    in `workdir`/data."""
    config = TidingsConfig(
        free_port(), free_port(), secret or secrets.token_urlsafe(32), workdir / "tidings.toml"
    )
    config.path.write_text(
        bench_config(
            port=config.port,
            api_port=config.api_port,
            api_key=BENCH_API_KEY,
            secret=config.secret,
            data_dir=workdir / "data",
            namespaces=namespaces or {},
            extra=extra,
        )
    )
    return config


async def start_tidings(
    namespaces: dict[str, dict[str, Any]] | None = None,
    cpus: frozenset[int] = frozenset(),
    extra: dict[str, Any] | None = None,
    workers: int = 1,
) -> Target:
    """`tidings serve` on free loopback ports with a temporary config and data dir;
    with `workers` > 1, `tidings serve --workers N` (a supervisor and N worker nodes)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    workdir = Path(tempfile.mkdtemp(prefix="tidings-bench-"))
    if workers > 1:
        extra = {**CLUSTER_SETTINGS, **(extra or {})}
    config = write_tidings_config(workdir, namespaces, extra)
    argv = [sys.executable, "-m", "tidings", "serve", "--config", str(config.path)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return await launch(
        "tidings",
        argv,
        workdir,
        ws_port=config.port,
        api_port=config.api_port,
        secret=config.secret,
        cpus=cpus,
        nodes=workers,
    )


async def start_redis(
    workdir: Path, cpus: frozenset[int]
) -> tuple[asyncio.subprocess.Process, int]:
    """A private, non-persistent `redis-server` on a free loopback port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("the Redis engine needs redis-server (apt-get install redis-server)")
    port = free_port()
    with open(workdir / "redis.log", "wb") as log:  # noqa: ASYNC230 - before it runs
        proc = await asyncio.create_subprocess_exec(
            binary,
            "--port", str(port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            preexec_fn=child_setup(cpus),
        )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            _reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            if proc.returncode is not None or time.monotonic() > deadline:
                await stop_process(proc, 5)
                log_tail = (workdir / "redis.log").read_text()[-500:]
                raise RuntimeError(f"redis-server did not start: {log_tail}") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return proc, port


async def start_tidings_nodes(
    count: int,
    namespaces: dict[str, dict[str, Any]] | None = None,
    cpus: frozenset[int] = frozenset(),
    extra: dict[str, Any] | None = None,
) -> Target:
    """`count` separate `tidings serve` processes, each on its own ports, joined by one
    private redis-server (engine = redis): what `--workers` does on one port, by hand.

    The load goes to every node's client port; the API is the first node's.
    """
    if count < 2:
        raise ValueError(f"a cluster of nodes needs at least 2, not {count}")
    workdir = Path(tempfile.mkdtemp(prefix="tidings-bench-nodes-"))
    redis, redis_port = await start_redis(workdir, cpus)
    companions = [redis]
    settings = {
        "engine": "redis",
        "redis_address": [f"redis://{HOST}:{redis_port}"],
        "redis_prefix": "bench",
        **CLUSTER_SETTINGS,
        **(extra or {}),
    }
    try:
        secret = secrets.token_urlsafe(32)
        configs = []
        for i in range(count):
            (workdir / f"node{i}").mkdir()
            configs.append(write_tidings_config(workdir / f"node{i}", namespaces, settings, secret))
        for config in configs[1:]:
            argv = [sys.executable, "-m", "tidings", "serve", "--config", str(config.path)]
            node = await launch(
                "tidings-node",
                argv,
                config.path.parent,
                ws_port=config.port,
                api_port=config.api_port,
                secret=secret,
                cpus=cpus,
            )
            assert node.proc is not None
            companions.append(node.proc)
        first = configs[0]
        argv = [sys.executable, "-m", "tidings", "serve", "--config", str(first.path)]
    except BaseException:
        for proc in companions:
            await stop_process(proc, 10)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    target = await launch(
        "tidings",
        argv,
        first.path.parent,
        ws_port=first.port,
        api_port=first.api_port,
        secret=first.secret,
        cpus=cpus,
        companions=companions,
        nodes=count,
    )
    target.ws_ports = [c.port for c in configs]
    target.workdir = workdir
    return target


def external(url: str, api_url: str, api_key: str, secret: str) -> Target:
    """A server somebody else runs: nothing to start, no process to measure."""
    parts = urlsplit(url)
    return Target(
        name=parts.netloc,
        ws_port=parts.port or 80,
        api_url=api_url.rstrip("/"),
        api_key=api_key,
        secret=secret,
        host=parts.hostname or HOST,
        ws_path=parts.path or WS_PATH,
    )
