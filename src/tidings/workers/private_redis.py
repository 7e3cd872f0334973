"""The supervisor's own `redis-server`: the engine of its workers when none is configured.

It listens on a unix socket only (no TCP port) in `<data_dir>/redis/`, or,
when that path is too long for a socket address, in a private directory under
the system's temp directory named after the data directory.

Persistence follows the channels: when durable channels are configured
(`personal_channel_durable`, a `durable` namespace) it keeps an append-only
file with `appendfsync always` in `<data_dir>/redis/`, so a publish to a
durable channel is on disk before it is answered, as with SQLite in one
process; otherwise (or with `durable_allow_volatile`) it keeps nothing.

A lock file held for the supervisor's life makes a second supervisor on the
same data directory fail clearly; whatever a killed supervisor left behind
(socket, pid file, even a `redis-server` still running) is cleared at start.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tidings.errors import ConfigError
from tidings.workers.lifeline import die_with_parent

log = logging.getLogger(__name__)

#: The Debian (and Ubuntu) package with `redis-server`.
DEBIAN_PACKAGE = "redis-server"
#: Seconds redis-server has to answer PING (loading a long append-only file takes a while).
START_TIMEOUT = 30.0
#: Seconds it has to exit after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
#: Longest unix socket path used in place (sun_path holds 108 bytes with its NUL).
MAX_SOCKET_PATH = 100


class PrivateRedis:
    """One `redis-server` child on a unix socket; `url` is what the workers connect to."""

    def __init__(self, data_dir: Path, *, durable: bool) -> None:
        self.directory = data_dir.resolve() / "redis"
        self.durable = durable
        self.socket_path = _socket_path(self.directory)
        self.pid_path = self.directory / "redis.pid"
        self.log_path = self.directory / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> None:
        """Lock the directory, clear what a killed run left, start and wait for PING.

        Raises ConfigError when redis-server is missing, the directory is
        in use by another supervisor, or the server does not come up.
        """
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigError(
                "workers",
                "several workers with the memory engine need redis-server, which is not "
                f"installed: install the Debian package {DEBIAN_PACKAGE!r} "
                f'(apt-get install {DEBIAN_PACKAGE}), or set engine = "redis" with '
                "redis_address",
            )
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError("data_dir", f"cannot create {self.directory}: {exc}") from None
        self._lock()
        self._clear_stale()
        self.proc = self._spawn(binary)
        self._wait_ready()

    def _spawn(self, binary: str) -> subprocess.Popen[bytes]:
        args = [
            binary,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--pidfile", str(self.pid_path),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes" if self.durable else "no",
            "--appendfsync", "always",
        ]  # fmt: skip
        log.info(
            "starting private redis-server on %s (%s)",
            self.socket_path,
            "append-only file, fsync always" if self.durable else "no persistence",
        )
        # Its own session: a Ctrl-C in the terminal reaches the supervisor only,
        # which stops redis-server after the workers have drained.
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            # The supervisor runs no threads: preexec_fn is safe here.
            preexec_fn=die_with_parent(signal.SIGTERM),  # noqa: PLW1509
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ConfigError(
                    "workers",
                    f"private redis-server exited {self.proc.returncode}: {self.log_tail()}",
                )
            if ping(self.socket_path):
                return
            time.sleep(0.02)
        self.stop()
        raise ConfigError("workers", f"private redis-server did not start: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def restart(self) -> None:
        """Start again after it died (same socket and files)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigError("workers", "redis-server is gone")
        self._clear_stale()
        self.proc = self._spawn(binary)
        self._wait_ready()

    def stop(self) -> None:
        """SIGTERM (it fsyncs and removes its socket), SIGKILL if it lingers; unlock."""
        if self._lock_fd is None:
            return  # never started: the files may be another supervisor's
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for path in (self.socket_path, self.pid_path):
            with contextlib.suppress(OSError):
                path.unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _lock(self) -> None:
        """Hold `supervisor.lock` for this process's life (the kernel drops it on kill -9)."""
        path = self.directory / "supervisor.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                "data_dir", f"{self.directory.parent} is in use by another tidings supervisor"
            ) from None
        self._lock_fd = fd

    def _clear_stale(self) -> None:
        """Remove the socket and pid file of a killed run; stop its redis-server if it lives."""
        pid = _read_pid(self.pid_path)
        if pid and _is_redis_in(pid, self.directory):
            log.warning("stopping redis-server %d left by a previous run", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)
        for path in (self.socket_path, self.pid_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def ping(path: Path) -> bool:
    """Whether a Redis answers PING with PONG on the unix socket `path`."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _socket_path(directory: Path) -> Path:
    path = directory / "redis.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"tidings-{os.getuid()}-{digest}" / "redis.sock"


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _is_redis_in(pid: int, directory: Path) -> bool:
    """Whether process `pid` is a redis-server working in `directory` (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return b"redis-server" in cmdline.split(b"\0")[0] and Path(cwd) == directory


def _wait_gone(pid: int, timeout: float = 5.0) -> None:
    """Wait until `pid` is gone or a zombie (whose parent, not us, must reap it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.02)
