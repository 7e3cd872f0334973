"""Real `redis-server` processes for tests: one server, a replica, a 3-primary cluster
(optionally with a replica per primary, for failovers and slot migrations).

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


def _covers(spec: str, slot: int) -> bool:
    """Whether a CLUSTER NODES slot field ("5", "0-5460", "[5->-id]") covers `slot`."""
    if spec.startswith("["):
        return False
    low, _, high = spec.partition("-")
    return int(low) <= slot <= int(high or low)


class RedisCluster:
    """A Redis Cluster of `size` primaries, each with `replicas` replicas (`--cluster create`)."""

    def __init__(self, directory: Path, size: int = 3, replicas: int = 0) -> None:
        count = size * (1 + replicas)
        self.replicas = replicas
        self.servers = [RedisServer(directory / f"node{n}", cluster=True) for n in range(count)]

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self) -> RedisCluster:
        for server in self.servers:
            server.start()
        nodes = [f"127.0.0.1:{server.port}" for server in self.servers]
        replicas = ["--cluster-replicas", str(self.replicas)] if self.replicas else []
        done = subprocess.run(
            [_binary("redis-cli"), "--cluster", "create", *nodes, *replicas, "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            self.stop()
            raise RedisFixtureError(f"cluster create failed:\n{done.stdout}\n{done.stderr}")
        try:
            self.wait_settled()
        except RedisFixtureError:
            self.stop()
            raise
        return self

    def wait_settled(self, timeout: float = START_TIMEOUT) -> None:
        """Until every running node says cluster_state:ok, agrees on who owns which
        slot, and every replica's link to its primary is up."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            running = [server for server in self.servers if server.running]
            states = [server.cli("cluster", "info") for server in running]
            views = {self._owners(server) for server in running}
            links = [server.cli("info", "replication") for server in running]
            replicas_up = all(
                "role:slave" not in info or "master_link_status:up" in info for info in links
            )
            if all("cluster_state:ok" in st for st in states) and len(views) == 1 and replicas_up:
                return
            last = f"{states} {views} {links}"
            time.sleep(0.05)
        raise RedisFixtureError(f"the cluster did not settle: {last[-2000:]}")

    def _owners(self, server: RedisServer) -> str:
        """Who serves which slots and replicates whom, as `server` sees it (comparable text)."""
        rows = []
        for line in server.cli("cluster", "nodes").splitlines():
            fields = line.split()
            if len(fields) < 8 or "fail" in fields[2]:
                continue
            address = fields[1].split("@")[0]
            if "master" in fields[2]:
                rows.append(address + " " + " ".join(sorted(fields[8:])))
            else:  # who replicates whom, as this node knows it (a failover needs it)
                rows.append(address + " of " + fields[3])
        return "\n".join(sorted(rows))

    def _myself(self, server: RedisServer) -> list[str]:
        """The fields of `server`'s own line in CLUSTER NODES."""
        for line in server.cli("cluster", "nodes").splitlines():
            fields = line.split()
            if len(fields) > 3 and "myself" in fields[2]:
                return fields
        raise RedisFixtureError(f"no CLUSTER NODES from port {server.port}")

    def node_id(self, server: RedisServer) -> str:
        return server.cli("cluster", "myid")

    def owner(self, slot: int) -> RedisServer:
        """The running primary serving `slot`."""
        for server in self.servers:
            if not server.running:
                continue
            fields = self._myself(server)
            if "master" in fields[2] and any(_covers(spec, slot) for spec in fields[8:]):
                return server
        raise RedisFixtureError(f"no running primary serves slot {slot}")

    def replica_of(self, primary: RedisServer) -> RedisServer:
        """A running replica of `primary`."""
        primary_id = self.node_id(primary)
        for server in self.servers:
            if server is primary or not server.running:
                continue
            fields = self._myself(server)
            if "slave" in fields[2] and fields[3] == primary_id:
                return server
        raise RedisFixtureError(f"primary on port {primary.port} has no running replica")

    def failover(self, replica: RedisServer, timeout: float = START_TIMEOUT) -> None:
        """`CLUSTER FAILOVER` on `replica`; returns once it is a primary and all agree."""
        deadline = time.monotonic() + timeout
        asked = 0.0
        answer = ""
        while "role:master" not in replica.cli("info", "replication"):
            if time.monotonic() > deadline:
                raise RedisFixtureError(
                    f"replica on port {replica.port} did not take over ({answer}):\n"
                    + replica.log()[-2000:]
                )
            if time.monotonic() - asked > 3.0:  # a manual failover can time out: ask again
                answer, asked = replica.cli("cluster", "failover"), time.monotonic()
            time.sleep(0.05)
        self.wait_settled(timeout)

    def migrate_slot(self, slot: int, target: RedisServer) -> None:
        """Move `slot` with its keys to the primary `target` (IMPORTING/MIGRATING, MIGRATE)."""
        source = self.owner(slot)
        source_id, target_id = self.node_id(source), self.node_id(target)
        target.cli("cluster", "setslot", str(slot), "importing", source_id)
        source.cli("cluster", "setslot", str(slot), "migrating", target_id)
        while True:
            keys = source.cli("cluster", "getkeysinslot", str(slot), "100").split()
            if not keys:
                break
            source.cli("migrate", "127.0.0.1", str(target.port), "", "0", "5000", "keys", *keys)
        for server in self.servers:
            if server.running and "role:master" in server.cli("info", "replication"):
                server.cli("cluster", "setslot", str(slot), "node", target_id)

    def flush(self) -> None:
        for server in self.servers:
            server.flush()

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
