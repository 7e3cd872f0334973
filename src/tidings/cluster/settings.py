"""The node's gossip settings, read and checked: addresses, seeds, keys, URLs.

`tidings.settings_rules` calls `check` at start-up, so a bad value stops the node with
one line naming the setting (`gossip_secret_keys.0: ...`); the runtime calls
the same readers to get typed values.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Protocol

from tidings.errors import ConfigError

DEFAULT_GOSSIP_PORT = 7946
VALID_KEY_SIZES = (16, 24, 32)
NETWORKS = ("wifi", "4g", "3g", "2g")
#: Longest region or network name (they travel in 512 bytes of metadata).
MAX_NAME = 64


class GossipSettings(Protocol):
    gossip_bind: str
    gossip_advertise: str
    gossip_join: list[str]
    gossip_secret_keys: list[str]
    gossip_label: str
    region: str
    network: str
    client_urls: list[str]
    cluster_events_url: str


def parse_address(text: str, default_port: int = DEFAULT_GOSSIP_PORT) -> tuple[str, int]:
    """`host:port`, `host`, `[v6]:port` as (host, port); `ValueError` if malformed."""
    text = text.strip()
    if not text:
        raise ValueError("empty address")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"bad address {text!r}: unclosed '['")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad address {text!r}")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:  # a bare IPv6 address
        host, port_text = text, ""
    else:
        host, port_text = text, ""
    if not host or any(c.isspace() or c in "/?#@" for c in host):
        raise ValueError(f"bad host in {text!r}")
    if port_text:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"bad port in {text!r}")
        port = int(port_text)
    else:
        port = default_port
    return host, port


def parse_key(text: str) -> bytes:
    """A base64 AES key of 16, 24 or 32 bytes (memberlist's and Serf's format)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(key) not in VALID_KEY_SIZES:
        raise ValueError(f"a key must decode to 16, 24 or 32 bytes, not {len(key)}")
    return key


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check(settings: GossipSettings) -> None:
    """Refuse bad gossip settings with a `ConfigError` naming the key."""
    if settings.gossip_bind:
        try:
            host, _ = parse_address(settings.gossip_bind)
        except ValueError as exc:
            raise ConfigError("gossip_bind", str(exc)) from None
        if not is_ip(host):
            raise ConfigError("gossip_bind", f"must be an IP address to bind, not {host!r}")
    if settings.gossip_advertise:
        try:
            host, _ = parse_address(settings.gossip_advertise)
        except ValueError as exc:
            raise ConfigError("gossip_advertise", str(exc)) from None
        if not is_ip(host):
            raise ConfigError("gossip_advertise", f"must be an IP address, not {host!r}")
    for index, seed in enumerate(settings.gossip_join):
        try:
            parse_address(seed)
        except ValueError as exc:
            raise ConfigError(f"gossip_join.{index}", str(exc)) from None
    for index, key in enumerate(settings.gossip_secret_keys):
        try:
            parse_key(key)
        except ValueError as exc:
            raise ConfigError(f"gossip_secret_keys.{index}", str(exc)) from None
    if len(settings.gossip_label) > 255:
        raise ConfigError("gossip_label", "at most 255 bytes")
    for key in ("region", "network"):
        value = getattr(settings, key)
        if len(value) > MAX_NAME or "," in value:
            raise ConfigError(key, f"at most {MAX_NAME} characters, no commas")
    url = settings.cluster_events_url
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError("cluster_events_url", "must be an http:// or https:// URL")
    for index, url in enumerate(settings.client_urls):
        if not url.startswith(("ws://", "wss://")) or "," in url:
            raise ConfigError(f"client_urls.{index}", "must be a ws:// or wss:// URL (no commas)")
