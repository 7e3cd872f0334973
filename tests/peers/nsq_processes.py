"""NSQ processes for the tests: real nsqd / nsqlookupd, `tidings lookup`, and the clients.

`scripts/build-nsq-peers.sh` (run by `make test` through setup-test-deps.sh, and by
`ensure_built()` here, quick when everything is built) puts nsqd, nsqlookupd and
gonsq-client under .peers/bin and nsqjs under tests/peers/nsqjs/node_modules. A
missing peer is a failed set-up, never a skipped test.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".peers" / "bin"
NSQJS = ROOT / "tests" / "peers" / "nsqjs"
BUILD_SCRIPT = ROOT / "scripts" / "build-nsq-peers.sh"


@functools.cache
def ensure_built() -> None:
    """Build the peers once per test session (a no-op when they are up to date)."""
    done = subprocess.run(
        ["sh", str(BUILD_SCRIPT)], check=False, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"build-nsq-peers.sh failed:\n{done.stdout}\n{done.stderr}"
    for name in ("nsqd", "nsqlookupd", "nsqadmin", "gonsq-client"):
        assert (BIN / name).exists(), f"{name} missing: run scripts/build-nsq-peers.sh"
    assert (NSQJS / "node_modules" / "nsqjs").exists(), "nsqjs missing"


@dataclass
class NsqProcess:
    """A server child process (nsqd, nsqlookupd or tidings lookup) on two ports."""

    name: str
    proc: subprocess.Popen[str]
    tcp_port: int
    http_port: int
    log_path: Path

    @property
    def tcp_address(self) -> str:
        return f"127.0.0.1:{self.tcp_port}"

    @property
    def http_address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """GET (or POST for action paths) on the HTTP port: (status, parsed JSON or text)."""
        return http_call(self.http_port, path, headers=headers)


def http_exchange(
    port: int,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on 127.0.0.1:port, redirects not followed: (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=data, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


def http_call(
    port: int,
    path: str,
    method: str | None = None,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
) -> tuple[int, Any]:
    """One HTTP call on 127.0.0.1:port: (status, JSON if the body is JSON, else text).

    Without `method`, paths of actions (create/delete/tombstone) are POSTed, others GET.
    """
    if method is None:
        method = "POST" if any(a in path for a in ("/create", "/delete", "/tomb")) else "GET"
    status, _, body = http_exchange(port, path, method, headers, data)
    text = body.decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class PortTaken(RuntimeError):
    """The process could not bind: another test took the free port first."""


def _start(name: str, argv: list[str], tmp_path: Path, tcp: int, http: int) -> NsqProcess:
    log_path = tmp_path / f"{name}-{tcp}.log"
    with log_path.open("a") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    server = NsqProcess(name, proc, tcp, http, log_path)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            error = PortTaken if "address already in use" in server.log() else RuntimeError
            raise error(f"{name} exited {proc.returncode}:\n{server.log()}")
        with contextlib.suppress(OSError):
            if http_call(http, "/ping")[1] == "OK":
                return server
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"{name} did not start:\n{server.log()}")


def _start_on_ports(
    name: str,
    argv: Callable[[int, int], list[str]],
    tmp_path: Path,
    ports: tuple[int, int] | None,
) -> NsqProcess:
    """Start on `ports`, or on free ports, picking new ones if another process was faster."""
    for _ in range(4):
        tcp, http = ports or (free_port(), free_port())
        try:
            return _start(name, argv(tcp, http), tmp_path, tcp, http)
        except PortTaken:
            if ports is not None:
                raise
    raise RuntimeError(f"{name}: no free ports after 4 attempts")


def start_nsqlookupd(
    tmp_path: Path, *extra: str, ports: tuple[int, int] | None = None
) -> NsqProcess:
    ensure_built()

    def argv(tcp: int, http: int) -> list[str]:
        return [
            str(BIN / "nsqlookupd"),
            f"-tcp-address=127.0.0.1:{tcp}",
            f"-http-address=127.0.0.1:{http}",
            "-broadcast-address=127.0.0.1",
            *extra,
        ]

    return _start_on_ports("nsqlookupd", argv, tmp_path, ports)


def start_tidings_lookup(
    tmp_path: Path, *extra: str, ports: tuple[int, int] | None = None
) -> NsqProcess:
    def argv(tcp: int, http: int) -> list[str]:
        return [
            *(sys.executable, "-m", "tidings", "lookup"),
            f"--tcp-address=127.0.0.1:{tcp}",
            f"--http-address=127.0.0.1:{http}",
            "--broadcast-address=127.0.0.1",
            *extra,
        ]

    return _start_on_ports("tidings-lookup", argv, tmp_path, ports)


def start_nsqd(tmp_path: Path, lookupd_tcp: list[str] | None = None, *extra: str) -> NsqProcess:
    ensure_built()

    def argv(tcp: int, http: int) -> list[str]:
        data = tmp_path / f"nsqd-{tcp}"
        data.mkdir(exist_ok=True)
        return [
            str(BIN / "nsqd"),
            f"-tcp-address=127.0.0.1:{tcp}",
            f"-http-address=127.0.0.1:{http}",
            "-broadcast-address=127.0.0.1",
            f"-data-path={data}",
            *(f"-lookupd-tcp-address={address}" for address in lookupd_tcp or []),
            *extra,
        ]

    return _start_on_ports("nsqd", argv, tmp_path, None)


def start_nsqadmin(tmp_path: Path, lookupd_http: str) -> NsqProcess:
    """Real nsqadmin reading `lookupd_http` (its tcp_port is 0: it has no TCP side)."""
    ensure_built()

    def argv(_: int, http: int) -> list[str]:
        return [
            str(BIN / "nsqadmin"),
            f"-http-address=127.0.0.1:{http}",
            f"-lookupd-http-address={lookupd_http}",
        ]

    server = _start_on_ports("nsqadmin", argv, tmp_path, None)
    server.tcp_port = 0
    return server


def wait_for(predicate: Any, timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll `predicate()` until it returns something truthy; that value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_client(argv: list[str], timeout: float = 60) -> Any:
    """Run a client program that prints one JSON line; its parsed output."""
    done = subprocess.run(
        argv, check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    assert done.returncode == 0, f"{argv[0]} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def gonsq(*args: str) -> Any:
    ensure_built()
    return run_client([str(BIN / "gonsq-client"), *args])


def nsqjs(*args: str) -> Any:
    ensure_built()
    return run_client(["node", str(NSQJS / "client.js"), *args])
