"""The loader: defaults < TOML file < TIDINGS_* environment < flags; bad input names its key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tidings.channel_options import ChannelOptions
from tidings.config import build, load, merge, parse_duration, parse_scalar, table_assignments
from tidings.errors import ConfigError, TidingsError
from tidings.settings import Settings, worker_count


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tidings.toml"
    path.write_text(text)
    return path


# --- layers ------------------------------------------------------------------------


def test_defaults() -> None:
    settings = load(None, {}, {})
    assert settings == Settings()
    assert (settings.port, settings.api_port, settings.client_ping_interval) == (8000, 9000, 25.0)
    assert settings.channel == ChannelOptions()
    assert settings.namespaces == {}


def test_file_environment_flags_precedence(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'port = 8001\napi_port = 9001\nname = "from-file"\nlog_level = "debug"\n',
    )
    env = {"TIDINGS_API_PORT": "9002", "TIDINGS_NAME": "from-env", "UNRELATED": "x"}
    flags = {"name": "from-flag"}
    settings = load(path, env, flags)
    assert settings.port == 8001, "file beats default"
    assert settings.api_port == 9002, "environment beats file"
    assert settings.name == "from-flag", "flag beats environment"
    assert settings.log_level == "debug"


def test_environment_values_are_typed() -> None:
    settings = load(
        None,
        {
            "TIDINGS_PORT": "8100",
            "TIDINGS_ALLOW_ANONYMOUS": "true",
            "TIDINGS_CLIENT_PING_INTERVAL": "1m",
            "TIDINGS_API_KEY": "not a toml value",
        },
        {},
    )
    assert settings.port == 8100
    assert settings.allow_anonymous is True
    assert settings.client_ping_interval == 60.0
    assert settings.api_key == "not a toml value"


def test_flags_as_strings_from_argparse() -> None:
    settings = load(None, {}, {"port": "8200", "client_pong_timeout": "500ms"})
    assert settings.port == 8200
    assert settings.client_pong_timeout == 0.5


def test_tables_merge_key_by_key_across_layers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[channel]\nhistory_size = 10\npresence = true\n"
        '[namespaces.chat]\nhistory_size = 5\nhistory_ttl = "1h"\n',
    )
    env = {"TIDINGS_CHANNEL": '{"history_size": 20}', "TIDINGS_NAMESPACES": '{"news": {}}'}
    flags = {
        "namespaces": table_assignments(["chat.presence=true"], with_namespace=True),
        "channel": table_assignments(["join_leave=true"], with_namespace=False),
    }
    settings = load(path, env, flags)
    assert settings.channel.history_size == 20
    assert settings.channel.presence is True, "a key the env did not set stays from the file"
    assert settings.channel.join_leave is True
    assert set(settings.namespaces) == {"chat", "news"}
    chat = settings.namespaces["chat"]
    assert (chat.history_size, chat.history_ttl, chat.presence) == (5, 3600.0, True)


def test_merge() -> None:
    assert merge({"a": 1, "t": {"x": 1, "y": 1}}, {"t": {"y": 2}}, {"a": 3}) == {
        "a": 3,
        "t": {"x": 1, "y": 2},
    }
    assert merge({"t": {"x": 1}}, {"t": 5}) == {"t": 5}


# --- durations and scalars ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("7d", 604800.0),
        (" 2 m ", 120.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "-5s", "1h30m", "five"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_in_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'client_ping_interval = "30s"\nclient_pong_timeout = 5\n'
        '[channel]\nhistory_ttl = "5m"\n[namespaces.a]\nhistory_ttl = "2h"\n',
    )
    settings = load(path, {}, {})
    assert settings.client_ping_interval == 30.0
    assert settings.client_pong_timeout == 5.0
    assert settings.channel.history_ttl == 300.0
    assert settings.namespaces["a"].history_ttl == 7200.0


def test_parse_scalar() -> None:
    assert parse_scalar("12") == 12
    assert parse_scalar("1.5") == 1.5
    assert parse_scalar("false") is False
    assert parse_scalar('"quoted"') == "quoted"
    assert parse_scalar("plain words") == "plain words"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"prot": 8000}, "prot"),
        ({"channel": {"histroy_size": 1}}, "channel.histroy_size"),
        ({"namespaces": {"chat": {"presense": True}}}, "namespaces.chat.presense"),
    ],
)
def test_unknown_keys_are_refused(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(raw)
    assert info.value.key == key
    assert "unknown" in info.value.message


def test_unknown_key_in_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, "bogus = 1\n"), {}, {})
    assert info.value.key == "bogus"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "nope.toml", {}, {})
    assert info.value.key == "config"
    assert "not found" in info.value.message


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, "port = = 1\n"), {}, {})
    assert info.value.key == "config"
    assert "invalid TOML" in info.value.message


def test_environment_table_must_be_json() -> None:
    with pytest.raises(ConfigError) as info:
        load(None, {"TIDINGS_NAMESPACES": "{chat: }"}, {})
    assert info.value.key == "namespaces"
    assert "TIDINGS_NAMESPACES" in info.value.message


def test_bad_environment_value_names_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        load(None, {"TIDINGS_PORT": "eighty"}, {})
    assert info.value.key == "port"


@pytest.mark.parametrize(
    ("pairs", "with_namespace", "key"),
    [
        (["presence"], False, "presence"),
        (["=true"], False, "=true"),
        (["chat=true"], True, "chat"),
        ([".presence=true"], True, ".presence"),
        (["chat.=1"], True, "chat."),
    ],
)
def test_bad_flag_assignments(pairs: list[str], with_namespace: bool, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        table_assignments(pairs, with_namespace=with_namespace)
    assert info.value.key == key


def test_flag_assignments() -> None:
    assert table_assignments(["a.x=1", "a.y=true", "b.z=hi"], with_namespace=True) == {
        "a": {"x": 1, "y": True},
        "b": {"z": "hi"},
    }


def test_config_error_is_a_tidings_error() -> None:
    exc = ConfigError("a.b", "bad")
    assert isinstance(exc, TidingsError)
    assert str(exc) == "config error: a.b: bad"
    assert str(ConfigError("", "bad")) == "config error: bad"


# --- the engine ---------------------------------------------------------------------------


def test_redis_engine_from_file_environment_and_flags(tmp_path: Path) -> None:
    path = write(tmp_path, 'engine = "redis"\nredis_address = "redis://127.0.0.1:6379"\n')
    settings = load(path, {}, {})
    assert settings.redis_address == ["redis://127.0.0.1:6379"]
    env = {
        "TIDINGS_ENGINE": "redis",
        "TIDINGS_REDIS_ADDRESS": "redis://a:1,unix:///tmp/r.sock",
        "TIDINGS_NODE_HEARTBEAT_TIMEOUT": "30s",
    }
    settings = load(None, env, {"durable_replicas": "1", "redis_command_timeout": "250ms"})
    assert settings.engine == "redis"
    assert settings.redis_address == ["redis://a:1", "unix:///tmp/r.sock"]
    assert settings.node_heartbeat_timeout == 30.0
    assert settings.durable_replicas == 1 and settings.redis_command_timeout == 0.25
    assert Settings().engine == "memory"  # `make serve` needs nothing else


def test_workers_from_file_environment_and_flags(tmp_path: Path) -> None:
    path = write(tmp_path, "workers = 3\n")
    assert load(path, {}, {}).workers == 3
    assert load(path, {"TIDINGS_WORKERS": "auto"}, {}).workers == "auto"
    assert load(path, {"TIDINGS_WORKERS": "auto"}, {"workers": 2}).workers == 2
    assert worker_count(build({})) == 1
    assert worker_count(build({"workers": "auto"})) == len(os.sched_getaffinity(0))
