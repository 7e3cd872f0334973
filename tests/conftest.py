"""Shared fixtures: free ports, and a real `tidings serve` process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest

#: Real redis-server fixtures (session-scoped servers shared by every test directory), and
#: the `backend` fixture (a scripted application back end).
pytest_plugins = ["tests.redis_fixtures", "tests.upstream.backend"]

SECRET = "test-secret-0123456789-0123456789-abcdef"
API_KEY = "test-api-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _toml_value(key)


def _toml_table(name: str, table: dict[str, Any], out: list[str]) -> None:
    """`[name]` with its scalars, then its sub-tables as `[name.sub]` (recursively)."""
    out.append(f"[{name}]")
    out += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if not _is_table(v)]
    for key, value in table.items():
        if _is_table(value):
            _toml_table(f"{name}.{_toml_key(key)}", value, out)


def _is_table(value: Any) -> bool:
    # Dicts of plain strings (e.g. static_headers) stay inline values.
    return isinstance(value, dict) and not all(isinstance(v, str) for v in value.values())


def write_toml(path: Path, settings: dict[str, Any]) -> None:
    """A TOML file from a flat dict plus tables (`channel`, `namespaces`, `proxy`, ...)."""
    lines: list[str] = []
    tables: list[str] = []
    for key, value in settings.items():
        if _is_table(value) or (isinstance(value, dict) and not value):
            _toml_table(key, value, tables)
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    path.write_text("\n".join(lines + tables) + "\n")


@dataclass
class ServerProcess:
    """A `tidings serve` child process on free ports."""

    proc: subprocess.Popen[str]
    port: int
    api_port: int
    log_path: Path
    api_key: str = API_KEY
    secret: str = SECRET
    extra: dict[str, Any] = field(default_factory=dict)
    config_path: Path | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/connection/websocket"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api"

    def token(self, user: str, ttl: float = 3600, **claims: Any) -> str:
        payload: dict[str, Any] = {"sub": user, **claims}
        if ttl:
            payload["exp"] = int(time.time() + ttl)
        return jwt.encode(payload, self.secret, algorithm="HS256")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode)

    def restart(self, sig: int = signal.SIGTERM) -> ServerProcess:
        """Stop with `sig` and start again: same config file, ports and data_dir.

        The process is replaced in place, so fixtures that stop `self` stop the new one.
        """
        assert self.config_path is not None, "not started by start_server"
        self.stop(sig)
        with self.log_path.open("a") as log:
            log.write(f"\n--- restarted after signal {sig} ---\n")
        self.proc = _spawn(self.config_path, self.log_path)
        _wait_ready(self, skip=len(self.log()))
        return self


def server_config(
    tmp_path: Path, port: int, api_port: int, settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The settings of a test server on `port`/`api_port`, plus `settings`."""
    return {
        "address": "127.0.0.1",
        "port": port,
        "api_port": api_port,
        "api_key": API_KEY,
        "token_hmac_secret": SECRET,
        "data_dir": str(tmp_path / "data"),
        **(settings or {}),
    }


def start_server(
    tmp_path: Path,
    settings: dict[str, Any] | None = None,
    args: list[str] | None = None,
    ready_within: float = 15.0,
) -> ServerProcess:
    """Start `tidings serve` with `settings` in a TOML file; wait until it is ready.

    A free port can be taken by another process between `free_port()` and the
    server's bind (other test runs share the machine): then it starts again
    on new ports, a few times. Settings that name their own ports are not retried.
    """
    for attempt in range(4):
        port, api_port = free_port(), free_port()
        config_path = tmp_path / f"tidings-{port}.toml"
        write_toml(config_path, server_config(tmp_path, port, api_port, settings))
        log_path = tmp_path / f"tidings-{port}.log"
        log_path.write_text("")
        proc = _spawn(config_path, log_path, args)
        server = ServerProcess(proc, port, api_port, log_path, config_path=config_path)
        try:
            _wait_ready(server, within=ready_within)
        except RuntimeError as exc:
            fixed_ports = settings is not None and ("port" in settings or "api_port" in settings)
            if "address already in use" not in str(exc) or fixed_ports or attempt == 3:
                raise
            continue
        return server
    raise AssertionError("unreachable")


def _spawn(config_path: Path, log_path: Path, args: list[str] | None = None) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    with log_path.open("a") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tidings", "serve", "--config", str(config_path), *(args or [])],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )


def _wait_ready(server: ServerProcess, skip: int = 0, within: float = 15.0) -> None:
    """Wait for "tidings ready" in the log (after its first `skip` characters)."""
    proc = server.proc
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tidings serve exited {proc.returncode}:\n{server.log()}")
        if "tidings ready" in server.log()[skip:]:
            return
        time.sleep(0.05)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"tidings serve did not start:\n{server.log()}")


#: Channel options that let clients do everything (for tests of behaviour, not permissions).
OPEN_CHANNEL: dict[str, Any] = {
    "history_size": 100,
    "history_ttl": "5m",
    "presence": True,
    "join_leave": True,
    "force_recovery": True,
    "allow_subscribe_for_client": True,
    "allow_publish_for_client": True,
    "allow_presence_for_subscriber": True,
    "allow_history_for_subscriber": True,
}


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start servers with given settings; all are stopped after the test."""
    started: list[ServerProcess] = []

    def factory(
        settings: dict[str, Any] | None = None, args: list[str] | None = None
    ) -> ServerProcess:
        server = start_server(tmp_path, settings, args)
        started.append(server)
        return server

    yield factory
    for server in started:
        with contextlib.suppress(Exception):
            server.stop(signal.SIGKILL if server.proc.poll() is None else signal.SIGTERM)


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """A server whose channels without namespace allow everything."""
    return server_factory({"channel": OPEN_CHANNEL, "client_ping_interval": 25})
