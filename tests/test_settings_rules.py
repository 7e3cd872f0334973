"""The rules settings follow (`tidings.settings_rules`): every bad value names its key."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.config import build
from tidings.errors import ConfigError
from tidings.settings import personal_channel_name_format


def config_error(raw: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        build(raw)
    return info.value


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


# --- the engine ---------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"workers": 0}, "workers"),
        ({"workers": -2}, "workers"),
        ({"workers": "many"}, "workers"),
        ({"workers": True}, "workers"),
        ({"workers": 2, "gossip_bind": "127.0.0.1:7946"}, "gossip_bind"),
    ],
)
def test_bad_workers_settings_name_their_key(raw: dict[str, Any], key: str) -> None:
    assert config_error(raw).key == key


def test_allow_tags_filter_is_for_stream_channels() -> None:
    settings = build({"namespaces": {"s": {"allow_tags_filter": True}}})
    assert settings.namespaces["s"].allow_tags_filter
    error = config_error(
        {"namespaces": {"m": {"subscription_type": "map", "allow_tags_filter": True}}}
    )
    assert error.key == "namespaces.m.allow_tags_filter"
