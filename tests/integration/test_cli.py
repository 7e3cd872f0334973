"""The `tidings serve` command line: flags, config errors, and the order of the layers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SECRET, free_port, write_toml
from tidings.settings import Settings

TIMEOUT = 30.0
TABLE_FLAGS = {
    "channel": "--channel",
    "namespaces": "--namespace",
    "proxy": "--proxy",
    "proxies": "--proxies",
    "rpc_namespaces": "--rpc-namespace",
    "queue_consume": "--queue-consume",
    "queue_rpc_topics": "--queue-rpc-topic",
}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m tidings ...` to completion, without inherited TIDINGS_* variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    return subprocess.run(
        [sys.executable, "-m", "tidings", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**base, **(env or {})},
        check=False,
    )


def flag_present(text: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


# --- --help -----------------------------------------------------------------------------------


def test_help_lists_every_setting_as_a_flag() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    flat = " ".join(text.split())
    defaults = Settings()
    fields = list(Settings.__struct_fields__)
    assert {"port", "api_key", "namespaces"} <= set(fields)
    missing = []
    for field in fields:
        flag = TABLE_FLAGS.get(field, "--" + field.replace("_", "-"))
        if not flag_present(text, flag):
            missing.append(flag)
            continue
        if field in TABLE_FLAGS:
            continue
        default = getattr(defaults, field)
        if isinstance(default, bool):
            assert flag_present(text, "--no-" + field.replace("_", "-")), field
        assert f"TIDINGS_{field.upper()}" in flat, field
        assert f"default {default!r}" in flat, (field, default)
    assert missing == [], f"flags missing from --help: {missing}"
    # No contradicting "(default: None)" from argparse next to the real default.
    assert "(default: None)" not in flat


# --- bad settings -----------------------------------------------------------------------------


def _bad_case(name: str, key: str, toml: str = "", *args: str, **env: str) -> Any:
    return pytest.param(toml, list(args), env, key, id=name)


CHAT = "[namespaces.chat]\n"
CHAT_SIZE = "namespaces.chat.history_size"


@pytest.mark.parametrize(
    ("toml", "args", "env", "key"),
    [
        _bad_case("port-not-int", "port", 'port = "abc"'),
        _bad_case("port-out-of-range", "port", "port = 70000"),
        _bad_case("ns-negative-history", CHAT_SIZE, CHAT + "history_size = -1"),
        _bad_case("ns-wrong-type", CHAT_SIZE, CHAT + 'history_size = "x"'),
        _bad_case("unknown-key", "bogus_setting", "bogus_setting = 1"),
        _bad_case("ns-unknown-key", "namespaces.chat.bogus_option", CHAT + "bogus_option = 1"),
        _bad_case("channel-wrong-type", "channel.presence", '[channel]\npresence = "maybe"'),
        _bad_case("bad-duration", "client_ping_interval", 'client_ping_interval = "5 parsecs"'),
        _bad_case("env-port", "port", "", TIDINGS_PORT="abc"),
        _bad_case("flag-port", "port", "", "--port", "abc"),
        _bad_case("flag-namespace", CHAT_SIZE, "", "--namespace", "chat.history_size=-1"),
    ],
)
def test_bad_setting_exits_2_with_one_line_naming_the_key(
    tmp_path: Path, toml: str, args: list[str], env: dict[str, str], key: str
) -> None:
    config = tmp_path / "tidings.toml"
    config.write_text(toml + "\n")
    # Free ports as flags (they win over file and env), except where the port is the point.
    ports = [] if key == "port" else ["--port", str(free_port()), "--api-port", str(free_port())]
    result = run_cli("serve", "--config", str(config), *ports, *args, env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", lines[0]), lines[0]
    assert "ready" not in result.stdout


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("serve", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "nope.toml" in line


# --- layers: file < environment < flags -------------------------------------------------------


def _serve(
    tmp_path: Path, settings: dict[str, Any], env: dict[str, str], args: list[str]
) -> Iterator[int]:
    """Run `tidings serve`; yield its API port once it is ready; stop it after."""
    api_port = free_port()
    config = tmp_path / f"layers-{api_port}.toml"
    write_toml(
        config,
        {
            "address": "127.0.0.1",
            "port": free_port(),
            "api_port": api_port,
            "token_hmac_secret": SECRET,
            "data_dir": str(tmp_path / "data"),
            **settings,
        },
    )
    log_path = tmp_path / f"layers-{api_port}.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tidings", "serve", "--config", str(config), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**base, **env},
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while "tidings ready" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        yield api_port
    finally:
        proc.terminate()
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def api_status(api_port: int, key: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}/api/info",
        data=b"{}",
        headers={"X-API-Key": key, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as resp:
            assert "nodes" in json.loads(resp.read())["result"]
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        assert json.loads(exc.read())["error"]["code"] == 101
        return int(exc.code)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {"TIDINGS_API_KEY": "env-key"}
    for api_port in _serve(tmp_path, {"api_key": "file-key"}, env, []):
        assert api_status(api_port, "env-key") == 200
        assert api_status(api_port, "file-key") == 401


def test_flag_overrides_the_environment(tmp_path: Path) -> None:
    env = {"TIDINGS_API_KEY": "env-key"}
    args = ["--api-key", "flag-key"]
    for api_port in _serve(tmp_path, {"api_key": "file-key"}, env, args):
        assert api_status(api_port, "flag-key") == 200
        assert api_status(api_port, "env-key") == 401
        assert api_status(api_port, "file-key") == 401


def test_file_applies_without_env_or_flag(tmp_path: Path) -> None:
    for api_port in _serve(tmp_path, {"api_key": "file-key"}, {}, []):
        assert api_status(api_port, "file-key") == 200
        assert api_status(api_port, "other") == 401
