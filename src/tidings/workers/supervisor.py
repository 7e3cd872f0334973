"""The supervisor of `tidings serve --workers N`: N worker processes, one set of ports.

The supervisor serves no client itself. It

1. starts a private `redis-server` when the engine is the memory one
   (`PrivateRedis`), so that the workers form a cluster on it;
2. binds the client and API ports once with SO_REUSEPORT (a port given as 0
   becomes a concrete one, and a port in use fails here, before any worker);
   the sockets are never listened on, they only hold the ports;
3. starts the workers (`tidings.workers.worker`), each a cluster node named
   `<name>-w<i>`, listening on both ports with SO_REUSEPORT: the kernel
   spreads new connections over them;
4. restarts a worker that dies (counted and logged), after a delay that
   doubles while it keeps dying young, so a crash loop costs little;
5. on SIGTERM or SIGINT sends SIGTERM to every worker (each drains: in-flight
   API calls finish, clients get 3001), waits `shutdown_timeout` plus a
   margin, kills stragglers, then stops the private redis-server.

It is one thread with no event loop: signals and the workers' status pipes
wake one `select`. Children run in their own sessions (a terminal's Ctrl-C
reaches the supervisor alone) and die with it (`lifeline`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import msgspec

from tidings.banner import Ports, print_banner
from tidings.errors import ConfigError
from tidings.settings import Settings, durable_wanted, worker_count
from tidings.workers.lifeline import die_with_parent
from tidings.workers.private_redis import PrivateRedis
from tidings.workers.worker import READY, encode_settings

log = logging.getLogger(__name__)

#: First delay before restarting a worker that died young; doubles up to MAX_BACKOFF.
FIRST_BACKOFF = 0.25
MAX_BACKOFF = 30.0
#: A worker that ran this long before dying is restarted after FIRST_BACKOFF again.
STABLE_AFTER = 30.0
#: Seconds a worker has to listen after it is started, at start-up.
START_TIMEOUT = 60.0
#: Seconds beyond `shutdown_timeout` a worker has to exit after SIGTERM.
STOP_MARGIN = 5.0


def restart_delay(young_deaths: int) -> float:
    """Seconds before restarting a worker that died young `young_deaths` times in a row."""
    return min(MAX_BACKOFF, FIRST_BACKOFF * 2.0 ** max(0, young_deaths - 1))


@dataclass
class WorkerSlot:
    """One worker's place: its current process, and its record of deaths."""

    index: int
    name: str
    proc: subprocess.Popen[bytes] | None = None
    status_fd: int = -1
    ready: bool = False
    started_at: float = 0.0
    #: Deaths in a row of a worker that did not live STABLE_AFTER seconds.
    young_deaths: int = 0
    restarts: int = 0
    restart_at: float | None = None


class Supervisor:
    """Runs `workers` worker processes until SIGTERM/SIGINT; `run()` returns the exit status."""

    def __init__(self, settings: Settings, notes: list[str] | None = None) -> None:
        self.settings = settings
        self.notes = notes or []
        self.count = worker_count(settings)
        base = settings.name or socket.gethostname()
        self.slots = [WorkerSlot(i, f"{base}-w{i}") for i in range(1, self.count + 1)]
        self.redis: PrivateRedis | None = None
        if settings.engine == "memory":
            durable = durable_wanted(settings) and not settings.durable_allow_volatile
            self.redis = PrivateRedis(Path(settings.data_dir), durable=durable)
        self.redis_restarts = 0
        self._reserved: list[socket.socket] = []
        self._selector = selectors.DefaultSelector()
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        self.client_port = settings.port
        self.api_port = settings.api_port

    # --- the whole life ---------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        try:
            if self.redis is not None:
                self.redis.start()
            try:
                self.client_port = self._reserve(self.settings.address, self.settings.port)
                self.api_port = self._reserve(self.settings.api_address, self.settings.api_port)
            except OSError as exc:
                print(f"tidings: cannot listen: {exc}", file=sys.stderr)
                return 1
            for slot in self.slots:
                self._spawn(slot)
            status = self._wait_all_ready()
            if status is not None:
                return status
            self._print_banner()
            self._supervise()
            return 0
        except ConfigError as exc:
            print(f"tidings: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"tidings: cannot start the workers: {exc}", file=sys.stderr)
            return 1
        finally:
            self._shutdown()

    def _install_signals(self) -> None:
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)

        def stop(signum: int, frame: FrameType | None) -> None:
            self._stopping = True

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, stop)
        # A handler (not the default "ignore") so that a child's death wakes select().
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)

    def _reserve(self, address: str, port: int) -> int:
        """Bind (not listen) `address:port` with SO_REUSEPORT; the concrete port."""
        infos = socket.getaddrinfo(
            address or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, sockaddr = infos[0]
        if port:
            # Without SO_REUSEPORT this bind fails if any process holds the port, another
            # supervisor's workers included, which SO_REUSEPORT alone would let us join.
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(sockaddr)
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind(sockaddr)
        except OSError:
            sock.close()
            raise
        self._reserved.append(sock)
        return int(sock.getsockname()[1])

    # --- workers ------------------------------------------------------------------------

    def worker_settings(self, slot: WorkerSlot) -> Settings:
        changes: dict[str, object] = {
            "name": slot.name,
            "workers": 1,
            "port": self.client_port,
            "api_port": self.api_port,
        }
        if self.redis is not None:
            changes["engine"] = "redis"
            changes["redis_address"] = [self.redis.url]
            changes["redis_cluster_address"] = []
        return msgspec.structs.replace(self.settings, **changes)

    def _spawn(self, slot: WorkerSlot) -> None:
        """Start the slot's worker and hand it its settings; OSError if that fails."""
        status_r, status_w = os.pipe()
        command = [sys.executable, "-m", "tidings.workers.worker", "--name", slot.name]
        proc: subprocess.Popen[bytes] | None = None
        try:
            proc = subprocess.Popen(
                [*command, "--status-fd", str(status_w)],
                stdin=subprocess.PIPE,
                pass_fds=(status_w,),
                start_new_session=True,
                # The supervisor runs no threads: preexec_fn is safe here.
                preexec_fn=die_with_parent(signal.SIGTERM),  # noqa: PLW1509
            )
            assert proc.stdin is not None
            # The settings, then stdin stays open: its end of file tells the worker we are gone.
            proc.stdin.write(encode_settings(self.worker_settings(slot)))
            proc.stdin.flush()
        except OSError:
            os.close(status_r)
            if proc is not None:
                proc.kill()
                proc.wait()
                if proc.stdin is not None:
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
            raise
        finally:
            os.close(status_w)
        os.set_blocking(status_r, False)
        self._selector.register(status_r, selectors.EVENT_READ, slot)
        slot.proc, slot.status_fd, slot.ready = proc, status_r, False
        slot.started_at, slot.restart_at = time.monotonic(), None
        log.info("worker %s started (pid %d)", slot.name, proc.pid)

    def _read_status(self, slot: WorkerSlot) -> None:
        try:
            data = os.read(slot.status_fd, 256)
        except BlockingIOError:
            return
        if READY in data:
            slot.ready = True
            log.info("worker %s (pid %d) ready", slot.name, slot.proc.pid if slot.proc else 0)
        if not data:  # the worker closed it: it is exiting
            self._close_status(slot)

    def _close_status(self, slot: WorkerSlot) -> None:
        if slot.status_fd >= 0:
            self._selector.unregister(slot.status_fd)
            os.close(slot.status_fd)
            slot.status_fd = -1

    def _poll(self, timeout: float | None) -> None:
        """Wait for a signal, a status line or `timeout`; read what came."""
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_r, 4096):
                        pass
            else:
                self._read_status(key.data)

    def _wait_all_ready(self) -> int | None:
        """None once every worker listens; an exit status if one fails first or we are stopped."""
        deadline = time.monotonic() + START_TIMEOUT
        while not all(slot.ready for slot in self.slots):
            if self._stopping:
                return 0
            for slot in self.slots:
                if slot.proc is not None and slot.proc.poll() is not None and not slot.ready:
                    code = slot.proc.returncode
                    print(
                        f"tidings: worker {slot.name} exited {code} while starting",
                        file=sys.stderr,
                    )
                    return code if code > 0 else 1
            if time.monotonic() > deadline:
                print(f"tidings: workers not ready in {START_TIMEOUT:.0f} s", file=sys.stderr)
                return 1
            self._poll(0.5)
        return None

    def _supervise(self) -> None:
        while not self._stopping:
            now = time.monotonic()
            for slot in self.slots:
                if slot.proc is not None and slot.proc.poll() is not None:
                    self._died(slot, now)
                if slot.restart_at is not None and slot.restart_at <= now:
                    self._respawn(slot, now)
            self._check_redis()
            due = [s.restart_at for s in self.slots if s.restart_at is not None]
            self._poll(max(0.0, min(due) - time.monotonic()) if due else 1.0)

    def _respawn(self, slot: WorkerSlot, now: float) -> None:
        """Start the slot's worker again; if that fails (fork, pipe), try again later."""
        try:
            self._spawn(slot)
        except OSError as exc:
            slot.young_deaths += 1
            delay = restart_delay(slot.young_deaths)
            slot.restart_at = now + delay
            log.error("worker %s did not start: %s; again in %.2f s", slot.name, exc, delay)

    def _died(self, slot: WorkerSlot, now: float) -> None:
        assert slot.proc is not None
        code = slot.proc.returncode
        lived = now - slot.started_at
        self._close_status(slot)
        if slot.proc.stdin is not None:
            with contextlib.suppress(OSError):
                slot.proc.stdin.close()
        slot.proc = None
        slot.young_deaths = slot.young_deaths + 1 if lived < STABLE_AFTER else 1
        delay = restart_delay(slot.young_deaths)
        slot.restarts += 1
        slot.restart_at = now + delay
        how = f"killed by signal {-code}" if code < 0 else f"exited {code}"
        log.warning(
            "worker %s %s after %.1f s; restart %d in %.2f s",
            slot.name,
            how,
            lived,
            slot.restarts,
            delay,
        )

    def _check_redis(self) -> None:
        redis = self.redis
        if redis is None or redis.running:
            return
        self.redis_restarts += 1
        log.error(
            "private redis-server died (restart %d): %s", self.redis_restarts, redis.log_tail()
        )
        try:
            redis.restart()
        except ConfigError as exc:
            log.error("private redis-server did not restart: %s; stopping", exc)
            self._stopping = True

    # --- the end ------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """SIGTERM every worker, wait for their drain, kill stragglers; stop redis-server."""
        running = [s for s in self.slots if s.proc is not None and s.proc.poll() is None]
        if running:
            log.info("stopping %d workers", len(running))
        for slot in running:
            assert slot.proc is not None
            with contextlib.suppress(ProcessLookupError):
                slot.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_timeout + STOP_MARGIN
        for slot in self.slots:
            proc = slot.proc
            if proc is None:
                continue
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %s did not stop in time: killed", slot.name)
                proc.kill()
                proc.wait()
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            self._close_status(slot)
        if self.redis is not None:
            self.redis.stop()
        for sock in self._reserved:
            sock.close()
        self._reserved.clear()
        signal.set_wakeup_fd(-1)
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _print_banner(self) -> None:
        if self.notes:
            print("\n".join(self.notes), flush=True)
        print_banner(self.settings, Ports(self.client_port, self.api_port))
        names = ", ".join(slot.name for slot in self.slots)
        pids = ", ".join(str(slot.proc.pid) for slot in self.slots if slot.proc is not None)
        print(f"  workers:  {self.count} ({names}; pids {pids}), supervisor pid {os.getpid()}")
        if self.redis is not None:
            print(f"  engine:   private redis-server at {self.redis.url}", flush=True)
