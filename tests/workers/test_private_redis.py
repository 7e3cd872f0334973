"""PrivateRedis: a real redis-server on a unix socket, locked to its data directory."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tidings.errors import ConfigError
from tidings.workers.private_redis import MAX_SOCKET_PATH, PrivateRedis, ping


@pytest.fixture
def started() -> Iterator[list[PrivateRedis]]:
    """Servers to stop after the test."""
    servers: list[PrivateRedis] = []
    yield servers
    for server in servers:
        server.stop()


def _config(server: PrivateRedis, key: str) -> str:
    client = redis.Redis(unix_socket_path=str(server.socket_path), decode_responses=True)
    try:
        value: str = client.config_get(key)[key]
        return value
    finally:
        client.close()


def test_without_durable_channels_it_keeps_nothing_and_stop_cleans_up(
    tmp_path: Path, started: list[PrivateRedis]
) -> None:
    server = PrivateRedis(tmp_path / "data", durable=False)
    started.append(server)
    server.start()
    assert server.url == f"unix://{tmp_path.resolve()}/data/redis/redis.sock"
    assert ping(server.socket_path)
    assert _config(server, "appendonly") == "no"
    assert _config(server, "save") == ""
    assert _config(server, "port") == "0"
    proc = server.proc
    assert proc is not None
    server.stop()
    assert proc.poll() is not None
    assert not server.socket_path.exists()
    assert not server.pid_path.exists()


def test_durable_channels_get_an_append_only_file_with_fsync_always(
    tmp_path: Path, started: list[PrivateRedis]
) -> None:
    server = PrivateRedis(tmp_path / "data", durable=True)
    started.append(server)
    server.start()
    assert _config(server, "appendonly") == "yes"
    assert _config(server, "appendfsync") == "always"
    assert _config(server, "dir") == str(server.directory)


def test_a_second_server_on_the_same_data_dir_is_refused_and_harms_nothing(
    tmp_path: Path, started: list[PrivateRedis]
) -> None:
    first = PrivateRedis(tmp_path / "data", durable=False)
    second = PrivateRedis(tmp_path / "data", durable=False)
    started += [first, second]
    first.start()
    with pytest.raises(ConfigError, match="in use by another tidings supervisor"):
        second.start()
    second.stop()
    assert ping(first.socket_path)


def test_without_redis_server_the_error_names_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"apt-get install redis-server") as info:
        PrivateRedis(tmp_path / "data", durable=False).start()
    assert info.value.key == "workers"


def test_a_data_dir_too_deep_for_a_unix_socket_uses_the_temp_directory(
    tmp_path: Path, started: list[PrivateRedis]
) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    server = PrivateRedis(deep, durable=False)
    started.append(server)
    assert len(str(server.socket_path)) <= MAX_SOCKET_PATH
    assert server.socket_path == PrivateRedis(deep, durable=True).socket_path
    assert server.socket_path != PrivateRedis(tmp_path / "other", durable=False).socket_path
    server.start()
    assert ping(server.socket_path)
    assert (server.directory / "redis.log").exists()


def test_a_pid_file_naming_another_program_does_not_get_it_killed(
    tmp_path: Path, started: list[PrivateRedis]
) -> None:
    server = PrivateRedis(tmp_path / "data", durable=False)
    started.append(server)
    server.directory.mkdir(parents=True)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        server.pid_path.write_text(f"{bystander.pid}\n")
        server.start()
        assert ping(server.socket_path)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
