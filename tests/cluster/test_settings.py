"""Gossip settings: addresses, seeds and keys are read, and refused with the key named."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tidings.cluster.settings import parse_address, parse_key
from tidings.config import build, from_environment
from tidings.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("0.0.0.0:7946", ("0.0.0.0", 7946)),
        ("10.0.0.5", ("10.0.0.5", 7946)),
        ("seed.example:8000", ("seed.example", 8000)),
        ("[::1]:7000", ("::1", 7000)),
        ("[::1]", ("::1", 7946)),
        ("::1", ("::1", 7946)),
    ],
)
def test_parse_address(text: str, address: tuple[str, int]) -> None:
    assert parse_address(text) == address


@pytest.mark.parametrize(
    "text", ["", ":7946", "host:99999", "host:-1", "host:x", "[::1", "[::1]x", "a b:1", "a/b:1"]
)
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_parse_key() -> None:
    for size in (16, 24, 32):
        assert parse_key(base64.b64encode(b"k" * size).decode()) == b"k" * size
    for bad in ("not base64!", base64.b64encode(b"k" * 20).decode(), ""):
        with pytest.raises(ValueError):
            parse_key(bad)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"gossip_bind": "nowhere:7946"}, "gossip_bind"),
        ({"gossip_bind": "127.0.0.1:70000"}, "gossip_bind"),
        ({"gossip_advertise": "name.example:1"}, "gossip_advertise"),
        ({"gossip_join": ["ok:1", "bad host:1"]}, "gossip_join.1"),
        ({"gossip_secret_keys": ["c2hvcnQ="]}, "gossip_secret_keys.0"),
        ({"gossip_secret_keys": ["%%%"]}, "gossip_secret_keys.0"),
        ({"gossip_label": "x" * 256}, "gossip_label"),
        ({"region": "eu,us"}, "region"),
        ({"network": "n" * 65}, "network"),
        ({"client_urls": ["http://a/"]}, "client_urls.0"),
        ({"cluster_events_url": "ftp://a/"}, "cluster_events_url"),
    ],
)
def test_bad_gossip_settings_name_their_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(raw)
    assert info.value.key == key


def test_gossip_settings_from_environment() -> None:
    key = base64.b64encode(b"k" * 32).decode()
    raw = from_environment(
        {
            "TIDINGS_GOSSIP_BIND": "0.0.0.0:7946",
            "TIDINGS_GOSSIP_JOIN": "10.0.0.1:7946,10.0.0.2",
            "TIDINGS_GOSSIP_SECRET_KEYS": key,
            "TIDINGS_GOSSIP_SERF": "true",
            "TIDINGS_REGION": "eu",
        }
    )
    settings = build(raw)
    assert settings.gossip_join == ["10.0.0.1:7946", "10.0.0.2"]
    assert settings.gossip_secret_keys == [key]
    assert settings.gossip_serf is True
    assert settings.region == "eu"


def test_gossip_is_off_by_default() -> None:
    assert build({}).gossip_bind == ""
