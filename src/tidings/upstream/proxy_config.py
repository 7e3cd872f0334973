"""Settings of the proxies to the application back end, shaped like Centrifugo v6's.

Centrifugo v6 keeps client-wide proxies under `client.proxy.<type>`, channel-wide
ones under `channel.proxy.<type>` (enabled per namespace with
`<type>_proxy_enabled`), the RPC proxy under `rpc.proxy`, and named proxies in a
top-level `proxies` array. tidings has flat settings, so the same objects live in
TOML tables::

    [proxy]                       # node-wide bounds on proxy calls
    max_concurrent = 64
    max_waiting = 256

    [proxy.connect]               # Centrifugo: client.proxy.connect
    endpoint = "http://app/centrifugo/connect"
    timeout = "1s"
    http_headers = ["Cookie", "Authorization"]

    [proxies.billing]             # Centrifugo: proxies[] with name = "billing"
    endpoint = "http://billing/centrifugo/rpc"

    [rpc_namespaces.billing]      # Centrifugo: rpc.namespaces[] name = "billing"
    proxy_enabled = true
    proxy_name = "billing"

Namespaces switch channel-wide proxies on with the Centrifugo option names
(`subscribe_proxy_enabled`, `publish_proxy_name`, ...), see `ChannelOptions`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import msgspec

from tidings.errors import ConfigError

if TYPE_CHECKING:
    from tidings.channel_options import ChannelOptions
    from tidings.settings import Settings

PROXY_TYPES = ("connect", "refresh", "subscribe", "publish", "sub_refresh", "rpc")
#: Names of named proxies and RPC namespaces (Centrifugo's pattern).
NAME_PATTERN = re.compile(r"^[-a-zA-Z0-9_.]{2,}$")
#: Headers never forwarded even if listed: they describe the client's hop, not the client.
HOP_HEADERS = frozenset(
    {"connection", "upgrade", "content-length", "content-type", "host", "transfer-encoding"}
)


class TransformError(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    code: int
    message: str = ""
    temporary: bool = False


class TransformDisconnect(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    code: int
    reason: str = ""


class StatusTransform(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An HTTP status of the back end read as an error or a disconnect (Centrifugo's
    `http.status_to_code_transforms`)."""

    status_code: int
    to_error: TransformError | None = None
    to_disconnect: TransformDisconnect | None = None


class ProxyEndpoint(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One back-end endpoint: Centrifugo's proxy configuration object (HTTP only)."""

    #: Kept for Centrifugo configs (`client.proxy.connect.enabled`); an endpoint enables.
    enabled: bool = True
    endpoint: str = ""
    timeout: float = 1.0
    #: Headers of the client's HTTP upgrade request passed on (case-insensitive names).
    http_headers: list[str] = msgspec.field(default_factory=list)
    #: Headers the client sent in its connect request (headers emulation) passed on.
    #: Client-controlled: list only what the back end checks itself (e.g. Authorization).
    emulated_headers: list[str] = msgspec.field(default_factory=list)
    #: Centrifugo's `http.static_headers`: added to every request to this endpoint.
    static_headers: dict[str, str] = msgspec.field(default_factory=dict)
    include_connection_meta: bool = False
    binary_encoding: bool = False
    #: Centrifugo's `http.status_to_code_transforms`: non-200 statuses as answers.
    status_to_code_transforms: list[StatusTransform] = msgspec.field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.endpoint)


class ProxySettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[proxy]`: the default endpoint of each proxy type and the node's call limits."""

    connect: ProxyEndpoint = msgspec.field(default_factory=ProxyEndpoint)
    refresh: ProxyEndpoint = msgspec.field(default_factory=ProxyEndpoint)
    subscribe: ProxyEndpoint = msgspec.field(default_factory=ProxyEndpoint)
    publish: ProxyEndpoint = msgspec.field(default_factory=ProxyEndpoint)
    sub_refresh: ProxyEndpoint = msgspec.field(default_factory=ProxyEndpoint)
    rpc: ProxyEndpoint = msgspec.field(default_factory=ProxyEndpoint)
    #: Proxy calls in flight at once on this node.
    max_concurrent: int = 64
    #: Calls waiting for a free slot; more are refused at once (error 100, temporary).
    max_waiting: int = 256
    #: Seconds before a failed server-side refresh is tried again.
    refresh_retry: float = 10.0

    def endpoint(self, kind: str) -> ProxyEndpoint:
        endpoint: ProxyEndpoint = getattr(self, kind)
        return endpoint


class RpcNamespace(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`[rpc_namespaces.<ns>]`: RPC methods `<ns>:<name>` (Centrifugo's rpc namespaces)."""

    proxy_enabled: bool = False
    #: A `[proxies.<name>]` endpoint; empty: `[proxy.rpc]`.
    proxy_name: str = ""


PROXY_SETTING_DOCS: dict[str, str] = {
    "proxy": "table: [proxy.<type>] back-end endpoints (connect, refresh, subscribe, publish, "
    "sub_refresh, rpc) and limits max_concurrent, max_waiting, refresh_retry",
    "proxies": "tables: [proxies.<name>] named endpoints used by namespaces' *_proxy_name",
    "rpc_namespaces": "tables: [rpc_namespaces.<ns>] proxy_enabled, proxy_name for RPC '<ns>:...'",
}

CHANNEL_PROXY_OPTION_DOCS: dict[str, str] = {
    "subscribe_proxy_enabled": "ask the subscribe proxy before subscribing (no token needed)",
    "subscribe_proxy_name": "named proxy [proxies.<name>] for subscribe; empty: [proxy.subscribe]",
    "publish_proxy_enabled": "ask the publish proxy (may change or refuse the data)",
    "publish_proxy_name": "named proxy for publish; empty: [proxy.publish]",
    "sub_refresh_proxy_enabled": "refresh expiring subscriptions through the sub_refresh proxy",
    "sub_refresh_proxy_name": "named proxy for sub_refresh; empty: [proxy.sub_refresh]",
}


def check(settings: Settings) -> None:
    """Raise ConfigError for proxy settings that cannot work."""
    proxy = settings.proxy
    if proxy.max_concurrent <= 0:
        raise ConfigError("proxy.max_concurrent", "must be greater than zero")
    if proxy.max_waiting < 0:
        raise ConfigError("proxy.max_waiting", "must not be negative")
    if proxy.refresh_retry <= 0:
        raise ConfigError("proxy.refresh_retry", "must be greater than zero")
    for kind in PROXY_TYPES:
        _check_endpoint(f"proxy.{kind}", proxy.endpoint(kind), required=False)
    for name, endpoint in settings.proxies.items():
        if not NAME_PATTERN.match(name):
            raise ConfigError(f"proxies.{name}", "names use 2+ letters, digits, - _ .")
        _check_endpoint(f"proxies.{name}", endpoint, required=True)
    for ns, rpc in settings.rpc_namespaces.items():
        if not NAME_PATTERN.match(ns):
            raise ConfigError(f"rpc_namespaces.{ns}", "names use 2+ letters, digits, - _ .")
        _check_reference(f"rpc_namespaces.{ns}", "proxy_name", rpc.proxy_name, "rpc", settings)
    tables = [("channel", settings.channel)]
    tables += [(f"namespaces.{ns}", opts) for ns, opts in settings.namespaces.items()]
    for prefix, opts in tables:
        _check_channel(prefix, opts, settings)


def _check_endpoint(key: str, endpoint: ProxyEndpoint, *, required: bool) -> None:
    if not endpoint.endpoint:
        if required:
            raise ConfigError(f"{key}.endpoint", "required")
        return
    if not endpoint.endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"{key}.endpoint", "must be an http:// or https:// URL")
    if endpoint.timeout <= 0:
        raise ConfigError(f"{key}.timeout", "must be greater than zero")
    for option in ("http_headers", "emulated_headers"):
        for header in getattr(endpoint, option):
            if header.lower() in HOP_HEADERS:
                raise ConfigError(f"{key}.{option}", f"{header!r} cannot be passed on")
    for index, rule in enumerate(endpoint.status_to_code_transforms):
        where = f"{key}.status_to_code_transforms.{index}"
        if not 100 <= rule.status_code <= 599 or rule.status_code == 200:
            raise ConfigError(f"{where}.status_code", "must be an HTTP status other than 200")
        if (rule.to_error is None) == (rule.to_disconnect is None):
            raise ConfigError(where, "needs exactly one of to_error and to_disconnect")
        if rule.to_error is not None and not 0 < rule.to_error.code < 2**32:
            raise ConfigError(f"{where}.to_error.code", "must be a positive uint32")
        if rule.to_disconnect is not None and not 3000 <= rule.to_disconnect.code <= 4999:
            raise ConfigError(f"{where}.to_disconnect.code", "must be 3000-4999")


def _check_channel(prefix: str, opts: ChannelOptions, settings: Settings) -> None:
    for kind in ("subscribe", "publish", "sub_refresh"):
        name = getattr(opts, f"{kind}_proxy_name")
        enabled = getattr(opts, f"{kind}_proxy_enabled")
        _check_reference(prefix, f"{kind}_proxy_name", name, kind, settings)
        if enabled and not name and not settings.proxy.endpoint(kind).active:
            raise ConfigError(
                f"{prefix}.{kind}_proxy_enabled", f"needs [proxy.{kind}] endpoint or a proxy name"
            )


def _check_reference(prefix: str, option: str, name: str, kind: str, settings: Settings) -> None:
    if name and name not in settings.proxies:
        raise ConfigError(f"{prefix}.{option}", f"no [proxies.{name}] for the {kind} proxy")
