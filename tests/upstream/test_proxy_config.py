"""Proxy settings: Centrifugo-shaped tables, checked at start-up with the key named."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.config import build, from_environment
from tidings.errors import ConfigError


def ep(**extra: Any) -> dict[str, Any]:
    return {"endpoint": "http://127.0.0.1:3000/x", **extra}


def test_defaults_have_no_proxy() -> None:
    settings = build({})
    assert not settings.proxy.connect.active
    assert settings.proxy.max_concurrent == 64
    assert settings.proxy.max_waiting == 256


def test_a_full_configuration() -> None:
    settings = build(
        {
            "proxy": {
                "connect": ep(timeout="500ms", http_headers=["Cookie"]),
                "rpc": ep(static_headers={"X-A": "b"}),
                "max_concurrent": 8,
            },
            "proxies": {"billing": ep(timeout="2s")},
            "rpc_namespaces": {"billing": {"proxy_enabled": True, "proxy_name": "billing"}},
            "namespaces": {
                "room": {"subscribe_proxy_enabled": True, "subscribe_proxy_name": "billing"}
            },
        }
    )
    assert settings.proxy.connect.timeout == 0.5
    assert settings.proxies["billing"].timeout == 2.0
    assert settings.proxy.rpc.static_headers == {"X-A": "b"}
    assert settings.namespaces["room"].subscribe_proxy_name == "billing"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"proxy": {"connect": ep(endpoint="ftp://x")}}, "proxy.connect.endpoint"),
        ({"proxy": {"rpc": ep(timeout=0)}}, "proxy.rpc.timeout"),
        ({"proxy": {"connect": ep(http_headers=["Host"])}}, "proxy.connect.http_headers"),
        ({"proxy": {"max_concurrent": 0}}, "proxy.max_concurrent"),
        ({"proxy": {"max_waiting": -1}}, "proxy.max_waiting"),
        ({"proxy": {"connect": ep(nope=1)}}, "proxy.connect.nope"),
        ({"proxies": {"x": ep()}}, "proxies.x"),  # names are 2+ characters
        ({"proxies": {"ok": {}}}, "proxies.ok.endpoint"),
        ({"rpc_namespaces": {"ns": {"proxy_name": "missing"}}}, "rpc_namespaces.ns.proxy_name"),
        (
            {"namespaces": {"a": {"publish_proxy_enabled": True}}},
            "namespaces.a.publish_proxy_enabled",
        ),
        ({"channel": {"sub_refresh_proxy_name": "nope"}}, "channel.sub_refresh_proxy_name"),
        (
            {"proxy": {"rpc": ep(status_to_code_transforms=[{"status_code": 404}])}},
            "proxy.rpc.status_to_code_transforms.0",
        ),
        (
            {
                "proxy": {
                    "rpc": ep(
                        status_to_code_transforms=[{"status_code": 200, "to_error": {"code": 1}}]
                    )
                }
            },
            "proxy.rpc.status_to_code_transforms.0.status_code",
        ),
        (
            {
                "proxy": {
                    "rpc": ep(
                        status_to_code_transforms=[
                            {"status_code": 404, "to_disconnect": {"code": 1000}}
                        ]
                    )
                }
            },
            "proxy.rpc.status_to_code_transforms.0.to_disconnect.code",
        ),
    ],
)
def test_bad_settings_name_their_key(raw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(raw)
    assert caught.value.key == key


def test_environment_takes_json_tables() -> None:
    raw = from_environment(
        {
            "TIDINGS_PROXY": '{"connect": {"endpoint": "http://a/c", "timeout": "2s"}}',
            "TIDINGS_PROXIES": '{"rpc1": {"endpoint": "http://b/r"}}',
            "TIDINGS_RPC_NAMESPACES": '{"ns1": {"proxy_enabled": true, "proxy_name": "rpc1"}}',
        }
    )
    settings = build(raw)
    assert settings.proxy.connect.endpoint == "http://a/c"
    assert settings.proxy.connect.timeout == 2.0
    assert settings.rpc_namespaces["ns1"].proxy_name == "rpc1"
