"""The Centrifugo v6 config written for a load run (the peer itself runs in compare.py)."""

from __future__ import annotations

from tidings.bench import centrifugo
from tidings.bench.scenarios import API_NAMESPACES


def test_memory_config() -> None:
    cfg = centrifugo.config(port=8123, secret="s3", api_key="k", namespaces=API_NAMESPACES)
    assert cfg["http_server"] == {"address": "127.0.0.1", "port": 8123}
    assert cfg["engine"] == {"type": "memory"}
    assert cfg["client"]["token"]["hmac_secret_key"] == "s3"
    assert cfg["client"]["subscribe_to_user_personal_channel"]["enabled"] is True
    assert cfg["http_api"]["key"] == "k"
    assert cfg["health"]["enabled"] is True
    # Nothing leaves the machine.
    assert cfg["usage_stats"]["disabled"] is True
    assert cfg["channel"]["without_namespace"]["allow_subscribe_for_client"] is True
    spaces = {ns["name"]: ns for ns in cfg["channel"]["namespaces"]}
    assert set(spaces) == set(API_NAMESPACES)
    assert "history_size" not in spaces["mem"]
    assert spaces["hist"]["history_size"] == 100 and spaces["hist"]["history_ttl"] == "300s"


def test_redis_config() -> None:
    cfg = centrifugo.config(
        port=1, secret="s", api_key="k", engine="redis", redis_url="redis://127.0.0.1:7001"
    )
    assert cfg["engine"] == {"type": "redis", "redis": {"address": ["redis://127.0.0.1:7001"]}}
    assert cfg["channel"]["namespaces"] == []
