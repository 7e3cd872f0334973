"""Settings: defaults < TOML file < TIDINGS_* environment < flags; every bad value names its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tidings.channel_options import ChannelOptions
from tidings.config import build, load, merge, parse_duration, parse_scalar, table_assignments
from tidings.errors import ConfigError, TidingsError
from tidings.settings import Settings, personal_channel_name_format


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tidings.toml"
    path.write_text(text)
    return path


def config_error(raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        build(raw)
    return info.value


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


# --- errors name the dotted key -------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"port": "abc"}, "port"),
        ({"port": 70000}, "port"),
        ({"port": -1}, "port"),
        ({"port": 8000, "api_port": 8000}, "api_port"),
        ({"allow_anonymous": "maybe"}, "allow_anonymous"),
        ({"log_level": "loud"}, "log_level"),
        ({"client_ping_interval": "soon"}, "client_ping_interval"),
        ({"client_ping_interval": 0}, "client_ping_interval"),
        ({"client_pong_timeout": 30}, "client_pong_timeout"),
        ({"client_queue_max_size": 0}, "client_queue_max_size"),
        ({"channel_max_length": -3}, "channel_max_length"),
        ({"channel": {"history_size": -1}}, "channel.history_size"),
        ({"channel": {"history_ttl": "5 minutes"}}, "channel.history_ttl"),
        ({"channel": {"presence": "yes please"}}, "channel.presence"),
        ({"channel": 5}, "channel"),
        ({"namespaces": {"chat": {"history_size": "x"}}}, "namespaces.chat.history_size"),
        ({"namespaces": {"chat": {"history_ttl": "1y"}}}, "namespaces.chat.history_ttl"),
        ({"namespaces": {"chat": {"history_ttl": -1}}}, "namespaces.chat.history_ttl"),
        ({"namespaces": {"bad name": {}}}, "namespaces.bad name"),
        ({"namespaces": {"o": {"queue_topic": "x"}}}, "namespaces.o.queue_topic"),
        (
            {"queue_publish_address": "q:1", "namespaces": {"o": {"queue_topic": "a b"}}},
            "namespaces.o.queue_topic",
        ),
        ({"queue_publish_max_pending": 0}, "queue_publish_max_pending"),
        ({"queue_rpc_topics": {"o": "t"}}, "queue_rpc_topics.o"),
        ({"queue_publish_address": "q:1", "queue_rpc_topics": {"o": "a b"}}, "queue_rpc_topics.o"),
        (
            {"queue_consume": [{"topic": "t*", "nsqd_tcp_addresses": ["q:1"]}]},
            "queue_consume.0.topic",
        ),
        ({"queue_consume": [{"topic": "t"}]}, "queue_consume.0"),
        (
            {"queue_consume": [{"topic": "t" * 60, "nsqd_tcp_addresses": ["q:1"]}]},
            "queue_consume.0.topic",
        ),
        (
            {"queue_consume": [{"topic": "t", "channel": "", "nsqd_tcp_addresses": ["q:1"]}]},
            "queue_consume.0.channel",
        ),
        (
            {"queue_consume": [{"topic": "t", "max_in_flight": 0, "nsqd_tcp_addresses": ["q:1"]}]},
            "queue_consume.0.max_in_flight",
        ),
        ({"channel": {"subscription_type": "keyed"}}, "channel.subscription_type"),
        ({"namespaces": {"m": {"map_key_ttl": 2**70}}}, "namespaces.m.map_key_ttl"),
        ({"namespaces": {"m": {"map_stream_size": -1}}}, "namespaces.m.map_stream_size"),
        (
            {"namespaces": {"p": {"subscription_type": "shared_poll"}}},
            "namespaces.p.shared_poll_endpoint",
        ),
        (
            {
                "namespaces": {
                    "p": {"subscription_type": "shared_poll", "shared_poll_endpoint": "http://x/"}
                }
            },
            "shared_poll_hmac_secret_key",
        ),
        (
            {
                "shared_poll_hmac_secret_key": "k",
                "namespaces": {
                    "p": {
                        "subscription_type": "shared_poll",
                        "shared_poll_endpoint": "http://x/",
                        "shared_poll_refresh_interval": "0ms",
                    }
                },
            },
            "namespaces.p.shared_poll_refresh_interval",
        ),
    ],
)
def test_bad_values_name_their_key(raw: dict[str, Any], key: str) -> None:
    exc = config_error(raw)
    assert exc.key == key
    assert key in str(exc)
    assert exc.message


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"prot": 8000}, "prot"),
        ({"channel": {"histroy_size": 1}}, "channel.histroy_size"),
        ({"namespaces": {"chat": {"presense": True}}}, "namespaces.chat.presense"),
    ],
)
def test_unknown_keys_are_refused(raw: dict[str, Any], key: str) -> None:
    exc = config_error(raw)
    assert exc.key == key
    assert "unknown" in exc.message


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


def test_history_enabled_needs_size_and_ttl() -> None:
    assert not ChannelOptions(history_size=5).history_enabled
    assert not ChannelOptions(history_ttl=5).history_enabled
    assert ChannelOptions(history_size=5, history_ttl=5).history_enabled


def test_personal_channel_namespace_must_exist() -> None:
    error = config_error({"personal_channel_namespace": "inbox"})
    assert error.key == "personal_channel_namespace"
    settings = build({"personal_channel_namespace": "inbox", "namespaces": {"inbox": {}}})
    assert personal_channel_name_format(settings) == "inbox:#{user}"


def test_delta_types_are_checked() -> None:
    error = config_error({"namespaces": {"a": {"allowed_delta_types": ["xdelta"]}}})
    assert error.key == "namespaces.a.allowed_delta_types"
    settings = build({"channel": {"allowed_delta_types": ["fossil"], "delta_publish": True}})
    assert settings.channel.allowed_delta_types == ("fossil",)


def test_allow_tags_filter_is_for_stream_channels() -> None:
    settings = build({"namespaces": {"s": {"allow_tags_filter": True}}})
    assert settings.namespaces["s"].allow_tags_filter
    error = config_error(
        {"namespaces": {"m": {"subscription_type": "map", "allow_tags_filter": True}}}
    )
    assert error.key == "namespaces.m.allow_tags_filter"


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


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"engine": "nats"}, "engine"),
        ({"engine": "redis"}, "redis_address"),
        (
            {
                "engine": "redis",
                "redis_address": ["redis://a"],
                "redis_cluster_address": ["redis://b"],
            },
            "redis_address",
        ),
        ({"redis_address": ["http://a"]}, "redis_address.0"),
        ({"redis_prefix": "a{b}"}, "redis_prefix"),
        ({"redis_command_timeout": 0}, "redis_command_timeout"),
        ({"durable_replicas": -1}, "durable_replicas"),
        ({"node_heartbeat_interval": 5, "node_heartbeat_timeout": 5}, "node_heartbeat_timeout"),
    ],
)
def test_bad_engine_settings_name_their_key(raw: dict[str, Any], key: str) -> None:
    error = config_error(raw)
    assert error.key == key, error
    assert "\n" not in str(error)
