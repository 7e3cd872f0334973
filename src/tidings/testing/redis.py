"""Real `redis-server` processes for tests: one server, a replica, a 3-primary cluster.

Every server runs on a free loopback port with its own directory (AOF and
RDB files live there), so tests can stop, kill and restart it on the same
port and data. Nothing here needs pytest; the test suites wrap these in
fixtures. Needs Debian's `redis-server` and `redis-tools`
(`scripts/setup-test-deps.sh` installs them).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

#: Seconds a server has to start answering PING.
START_TIMEOUT = 10.0


class RedisFixtureError(RuntimeError):
    """A test Redis could not be started (the message has its log)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RedisFixtureError(f"{name} is not installed: run scripts/setup-test-deps.sh")
    return path


def _cli(port: int, *args: str, timeout: float = 10.0) -> str:
    done = subprocess.run(
        [_binary("redis-cli"), "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout.strip()


class RedisServer:
    """One `redis-server` child process; `url` is its `redis://` address."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int = 0,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        cluster: bool = False,
        replica_of: RedisServer | None = None,
        unix_socket: bool = False,
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.cluster = cluster
        self.replica_of = replica_of
        #: Also listen on a unix socket in the directory (see `unix_url`).
        self.socket_path = directory / "redis.sock" if unix_socket else None
        self.proc: subprocess.Popen[bytes] | None = None
        #: The cluster bus port (by default Redis takes port + 10000, maybe not free).
        self.bus_port = free_port() if cluster else 0
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def unix_url(self) -> str:
        assert self.socket_path is not None, "started without unix_socket=True"
        return f"unix://{self.socket_path}"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def _args(self) -> list[str]:
        args = [
            _binary("redis-server"),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--daemonize", "no",
            # a replica syncs at once (the default waits 5 s for more replicas)
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        if self.cluster:
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            args += ["--cluster-port", str(self.bus_port)]
            args += ["--cluster-node-timeout", "2000"]
        if self.socket_path is not None:
            args += ["--unixsocket", str(self.socket_path), "--unixsocketperm", "700"]
        if self.replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of.port)]
        return args

    def start(self) -> RedisServer:
        """Start (or start again, same port and directory) and wait for PING."""
        if self.running:
            return self
        self.proc = subprocess.Popen(
            self._args(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RedisFixtureError(f"redis-server exited:\n{self.log()}")
            if _cli(self.port, "ping") == "PONG":
                return self
            time.sleep(0.02)
        self.kill()
        raise RedisFixtureError(f"redis-server did not answer PING:\n{self.log()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: what it has not written to its AOF is lost."""
        self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def restart(self, sig: int = signal.SIGKILL) -> RedisServer:
        self.stop(sig)
        return self.start()

    def cli(self, *args: str) -> str:
        """The output of `redis-cli` against this server."""
        return _cli(self.port, *args)

    def flush(self) -> None:
        self.cli("flushall")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RedisCluster:
    """A Redis Cluster of three primaries (no replicas), made by `redis-cli --cluster create`."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.servers = [RedisServer(directory / f"node{n}", cluster=True) for n in range(size)]

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self) -> RedisCluster:
        for server in self.servers:
            server.start()
        nodes = [f"127.0.0.1:{server.port}" for server in self.servers]
        done = subprocess.run(
            [_binary("redis-cli"), "--cluster", "create", *nodes, "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            self.stop()
            raise RedisFixtureError(f"cluster create failed:\n{done.stdout}\n{done.stderr}")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            states = [server.cli("cluster", "info") for server in self.servers]
            if all("cluster_state:ok" in state for state in states):
                return self
            time.sleep(0.05)
        self.stop()
        raise RedisFixtureError("the cluster did not reach cluster_state:ok")

    def flush(self) -> None:
        for server in self.servers:
            server.flush()

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
