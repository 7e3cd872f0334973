"""Settings: embedded defaults, then a TOML file, then `TIDINGS_*` variables, then flags.

Every setting has one name used in all three places: `api_port` in the file,
`TIDINGS_API_PORT` in the environment, `--api-port` on the command line.
Namespace and default channel options are tables (`[namespaces.chat]`,
`[channel]`); in the environment they are JSON objects (`TIDINGS_NAMESPACES`,
`TIDINGS_CHANNEL`) and on the command line `--namespace chat.history_size=10`
and `--channel presence=true`. A bad value stops start-up with one
`ConfigError` that names the key.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from tidings.cluster import settings as gossip_settings
from tidings.errors import ConfigError
from tidings.protocol.nsq.names import is_valid_name
from tidings.upstream import proxy_config
from tidings.upstream.proxy_config import (
    CHANNEL_PROXY_OPTION_DOCS,
    PROXY_SETTING_DOCS,
    ProxyEndpoint,
    ProxySettings,
    RpcNamespace,
)


class ChannelOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Options of the channels of one namespace (or of channels without one)."""

    history_size: int = 0
    history_ttl: float = 0.0
    presence: bool = False
    join_leave: bool = False
    force_push_join_leave: bool = False
    force_recovery: bool = False
    allow_subscribe_for_client: bool = False
    allow_subscribe_for_anonymous: bool = False
    allow_publish_for_client: bool = False
    allow_publish_for_subscriber: bool = False
    allow_publish_for_anonymous: bool = False
    allow_presence_for_client: bool = False
    allow_presence_for_subscriber: bool = False
    allow_history_for_client: bool = False
    allow_history_for_subscriber: bool = False
    allow_user_limited_channels: bool = False
    durable: bool = False
    fsync: str = "batch"
    queue_topic: str = ""
    #: "stream" (publications) or "map" (keyed state: map subscriptions only).
    subscription_type: str = "stream"
    map_key_ttl: float = 0.0
    map_stream_size: int = 0
    map_stream_ttl: float = 0.0
    #: subscription_type "shared_poll": the back end polled once per channel for all.
    shared_poll_endpoint: str = ""
    shared_poll_refresh_interval: float = 5.0
    shared_poll_refresh_batch_size: int = 1000
    shared_poll_max_keys_per_connection: int = 1000
    shared_poll_channel_shutdown_delay: float = 0.0
    shared_poll_timeout: float = 5.0
    subscribe_proxy_enabled: bool = False
    subscribe_proxy_name: str = ""
    publish_proxy_enabled: bool = False
    publish_proxy_name: str = ""
    sub_refresh_proxy_enabled: bool = False
    sub_refresh_proxy_name: str = ""
    allowed_delta_types: tuple[str, ...] = ()
    delta_publish: bool = False

    @property
    def history_enabled(self) -> bool:
        return self.history_size > 0 and self.history_ttl > 0


CHANNEL_OPTION_DOCS: dict[str, str] = {
    "history_size": "publications kept per channel for history and recovery (0: no history)",
    "history_ttl": "how long publications are kept, seconds or '300s'/'5m'/'1h'/'7d' (0: none)",
    "presence": "track who is subscribed (presence, presence_stats)",
    "join_leave": "send join/leave pushes to subscribers that ask for them",
    "force_push_join_leave": "send join/leave pushes to every subscriber",
    "force_recovery": "recovery on resubscribe for every subscriber, asked or not",
    "allow_subscribe_for_client": "authenticated clients may subscribe without a token",
    "allow_subscribe_for_anonymous": "anonymous clients may subscribe too",
    "allow_publish_for_client": "any connected client may publish",
    "allow_publish_for_subscriber": "subscribers of the channel may publish",
    "allow_publish_for_anonymous": "anonymous clients may publish where publishing is allowed",
    "allow_presence_for_client": "any connected client may ask for presence",
    "allow_presence_for_subscriber": "subscribers may ask for presence",
    "allow_history_for_client": "any connected client may ask for history",
    "allow_history_for_subscriber": "subscribers may ask for history",
    "allow_user_limited_channels": "channels like 'dialog#42,43' limited to the users listed",
    "durable": "keep history in the durable store (SQLite under data_dir); survives restarts",
    "subscription_type": "'stream' (default) or 'map' (keyed state, map subscriptions)",
    "map_key_ttl": "map channels: how long a key lives after its last update (0: until removed)",
    "map_stream_size": "map channels: changes kept for recovery (0: no recovery, fresh snapshot)",
    "map_stream_ttl": "map channels: how long changes (and removal tombstones) are kept",
    "shared_poll_endpoint": "shared_poll channels: the back end URL polled (POST JSON)",
    "shared_poll_refresh_interval": "shared_poll channels: time between polls of a channel",
    "shared_poll_refresh_batch_size": "shared_poll channels: keys per back end request",
    "shared_poll_max_keys_per_connection": "shared_poll channels: keys one connection may track",
    "shared_poll_channel_shutdown_delay": "shared_poll channels: polling goes on this long after "
    "the last subscriber left",
    "shared_poll_timeout": "shared_poll channels: how long one back end request may take",
    "fsync": "durable write policy: 'always' (fsync each), 'batch' (group commit), 'never'",
    "queue_topic": "forward client publications to this queue topic (needs queue_publish_address)",
    **CHANNEL_PROXY_OPTION_DOCS,
    "allowed_delta_types": "delta compressions subscribers may ask for: [] or ['fossil']",
    "delta_publish": "send every publication as a delta to subscribers that negotiated one",
}


class QueueConsumeOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One queue topic whose messages this node publishes into channels (docs/bridges.md)."""

    topic: str
    channel: str = "tidings"
    nsqd_tcp_addresses: list[str] = msgspec.field(default_factory=list)
    lookupd_http_addresses: list[str] = msgspec.field(default_factory=list)
    max_in_flight: int = 100
    lookupd_poll_interval: float = 15.0


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Everything `tidings serve` can be told."""

    address: str = "0.0.0.0"
    port: int = 8000
    api_address: str = "127.0.0.1"
    api_port: int = 9000
    api_key: str = ""
    api_insecure: bool = False
    api_on_client_port: bool = False
    api_max_body_size: int = 10 * 1024 * 1024
    api_body_timeout: float = 10.0
    token_hmac_secret: str = ""
    token_rsa_public_key: str = ""
    token_ecdsa_public_key: str = ""
    token_audience: str = ""
    token_issuer: str = ""
    allow_anonymous: bool = False
    personal_channel: bool = True
    personal_channel_format: str = "#{user}"
    personal_channel_namespace: str = ""
    personal_channel_history_size: int = 1000
    personal_channel_history_ttl: float = 7 * 86400.0
    personal_channel_durable: bool = True
    personal_channel_fsync: str = "batch"
    durable_max_bytes: int = 0
    durable_batch_window: float = 0.002
    history_max_streams: int = 1_000_000
    client_history_rate: float = 10.0
    client_history_burst: int = 20
    user_connection_limit: int = 64
    client_channel_limit: int = 128
    client_command_rate: float = 100.0
    client_command_burst: int = 200
    client_command_abuse_limit: int = 100
    connection_rate_per_ip: float = 50.0
    connection_burst_per_ip: int = 200
    client_connections_per_ip: int = 1000
    client_connections_max: int = 0
    allowed_origins: list[str] = msgspec.field(default_factory=list)
    client_ip_allow: list[str] = msgspec.field(default_factory=list)
    client_ip_deny: list[str] = msgspec.field(default_factory=list)
    user_events_url: str = ""
    #: HMAC-SHA256 key of shared poll track signatures (Centrifugo's shared_poll.hmac_secret_key).
    shared_poll_hmac_secret_key: str = ""
    user_events_grace: float = 5.0
    user_events_batch_size: int = 100
    user_events_queue_size: int = 100_000
    broadcast_all_rate: float = 1000.0
    api_batch_max_commands: int = 1000
    data_dir: str = "./data"
    name: str = ""
    #: Worker processes: a count, or "auto" (one per core).
    workers: int | str = 1
    engine: str = "memory"
    redis_address: list[str] = msgspec.field(default_factory=list)
    redis_cluster_address: list[str] = msgspec.field(default_factory=list)
    redis_prefix: str = "tidings"
    redis_connect_timeout: float = 1.0
    redis_command_timeout: float = 1.0
    durable_replicas: int = 0
    durable_allow_volatile: bool = False
    node_heartbeat_interval: float = 3.0
    node_heartbeat_timeout: float = 10.0
    log_level: str = "info"
    log_format: str = "text"
    admin_password: str = ""
    admin_secret: str = ""
    admin_token_ttl: float = 600.0
    client_ping_interval: float = 25.0
    client_pong_timeout: float = 8.0
    client_stale_close_delay: float = 10.0
    client_queue_max_size: int = 1_048_576
    client_max_message_size: int = 65_536
    client_read_buffer_size: int = 1024
    client_head_timeout: float = 10.0
    client_message_timeout: float = 10.0
    client_close_timeout: float = 5.0
    channel_max_length: int = 255
    shutdown_timeout: float = 5.0
    demo: bool = False
    gossip_bind: str = ""
    gossip_advertise: str = ""
    gossip_join: list[str] = msgspec.field(default_factory=list)
    gossip_secret_keys: list[str] = msgspec.field(default_factory=list)
    gossip_label: str = ""
    gossip_serf: bool = False
    region: str = ""
    network: str = ""
    client_urls: list[str] = msgspec.field(default_factory=list)
    cluster_events_url: str = ""
    queue_consume: list[QueueConsumeOptions] = msgspec.field(default_factory=list)
    queue_publish_address: str = ""
    queue_publish_max_pending: int = 1000
    queue_rpc_topics: dict[str, str] = msgspec.field(default_factory=dict)
    channel: ChannelOptions = msgspec.field(default_factory=ChannelOptions)
    namespaces: dict[str, ChannelOptions] = msgspec.field(default_factory=dict)
    proxy: ProxySettings = msgspec.field(default_factory=ProxySettings)
    proxies: dict[str, ProxyEndpoint] = msgspec.field(default_factory=dict)
    rpc_namespaces: dict[str, RpcNamespace] = msgspec.field(default_factory=dict)


SETTING_DOCS: dict[str, str] = {
    "address": "interface of the client port",
    "port": "client port: WebSocket at /connection/websocket",
    "api_address": "interface of the server API port (loopback by default)",
    "api_port": "server API port: POST /api/<method>, GET /health",
    "api_key": "key the API requires in X-API-Key (random, printed at start, if empty)",
    "api_insecure": "serve the API without a key (development only)",
    "api_on_client_port": "also serve /api on the client port (less safe; the key is still needed)",
    "api_max_body_size": "largest API request body, bytes (HTTP 413 above)",
    "api_body_timeout": "seconds an API request has to send its body (HTTP 408 after)",
    "token_hmac_secret": "HMAC secret of connection tokens (random, printed at start, if empty)",
    "token_rsa_public_key": "RSA public key (PEM value or file) for RS256/384/512 tokens",
    "token_ecdsa_public_key": "ECDSA public key (PEM value or file) for ES256/384/512 tokens",
    "token_audience": "if set, tokens must carry this aud claim",
    "token_issuer": "if set, tokens must carry this iss claim",
    "allow_anonymous": "accept connections without a token (or with empty sub) as anonymous",
    "personal_channel": "subscribe every authenticated connection to its user's personal channel",
    "personal_channel_format": "name of a user's personal channel; {user} is the user id",
    "personal_channel_namespace": (
        "namespace whose options personal channels take (presence, join/leave, publish,"
        " history), named '<ns>:#<user>' unless personal_channel_format says otherwise"
    ),
    "personal_channel_history_size": "inbox size: messages kept per personal channel",
    "personal_channel_history_ttl": "inbox age limit, e.g. '7d'",
    "personal_channel_durable": "keep personal channels (offline inboxes) in the durable store",
    "personal_channel_fsync": "write policy of personal channels: always, batch or never",
    "durable_max_bytes": "cap on the durable store's file size (publish fails above; 0: none)",
    "durable_batch_window": "seconds the batch policy waits to group commits",
    "history_max_streams": "history streams kept in memory (publish creating more: 106; 0: none)",
    "client_history_rate": "history reads and recoveries per second per connection (111 above)",
    "client_history_burst": "history reads a connection may make at once",
    "user_connection_limit": "connections one user may hold on this node (3504 above; 0: no limit)",
    "client_channel_limit": "channels one connection may subscribe to (error 106; 0: no limit)",
    "client_command_rate": "commands per second per connection (error 111 above; 0: no limit)",
    "client_command_burst": "commands a connection may send at once before the rate applies",
    "client_command_abuse_limit": "commands refused with 111 before the client is cut off (3013)",
    "connection_rate_per_ip": "new connections per second per IP (HTTP 429 above; 0: no limit)",
    "connection_burst_per_ip": "connections one IP may open at once before the rate applies",
    "client_connections_per_ip": "sockets one IP may hold open on the client port (429; 0: none)",
    "client_connections_max": "sockets open on the client port in all (503; 0: fd limit - 1000)",
    "allowed_origins": "browser origins besides the port's own that may connect ('*': any)",
    "client_ip_allow": "if not empty, only these CIDR ranges may connect (HTTP 403 otherwise)",
    "client_ip_deny": "CIDR ranges refused when a socket is accepted (HTTP 403)",
    "user_events_url": "URL that receives batched online/offline user events (POST JSON)",
    "shared_poll_hmac_secret_key": "key of the HMAC signatures of tracked shared poll keys",
    "user_events_grace": "seconds a user must stay away before 'offline' is reported",
    "user_events_batch_size": "most user events sent in one POST",
    "user_events_queue_size": "user events kept while the URL is unreachable (newer dropped)",
    "broadcast_all_rate": "default messages per second of the broadcast_all API method",
    "api_batch_max_commands": "most commands in one batch API call (error 107 above)",
    "data_dir": "directory for durable data",
    "name": "node name shown by the info API method (default: host name)",
    "workers": "worker processes sharing the ports, each a cluster node ('auto': one per core;"
    " above 1: a supervisor, and a private redis-server with the memory engine; docs/workers.md)",
    "engine": "'memory' (one node) or 'redis' (nodes joined by Redis: a cluster)",
    "redis_address": "Redis URLs (redis://, rediss://, unix://); several: channels sharded",
    "redis_cluster_address": "seed URLs of a Redis Cluster (instead of redis_address)",
    "redis_prefix": "prefix of every Redis key and PUB/SUB channel (no braces)",
    "redis_connect_timeout": "seconds to wait for a Redis connection",
    "redis_command_timeout": "seconds to wait for a Redis reply (then error 100)",
    "durable_replicas": "Redis replicas a publish with history waits for (WAIT) before answering",
    "durable_allow_volatile": "serve durable namespaces from a Redis without AOF fsync always",
    "node_heartbeat_interval": "seconds between a node's heartbeats to the other nodes",
    "node_heartbeat_timeout": "seconds of silence after which a node is gone from info",
    "log_level": "debug, info, warning or error",
    "log_format": "text (one line per record) or json (one JSON object per line)",
    "admin_password": "password of the admin web UI at /admin on the API port (off if empty)",
    "admin_secret": "secret signing admin UI session tokens (the UI is off if empty)",
    "admin_token_ttl": "seconds an admin UI login lasts",
    "client_ping_interval": "seconds between server pings to each client",
    "client_pong_timeout": "seconds a client has to answer a ping (3012 after)",
    "client_stale_close_delay": "seconds a new connection has to send connect (3502 after)",
    "client_queue_max_size": "bytes queued for one client before it is disconnected as slow (3008)",
    "client_max_message_size": "largest frame a client may send, bytes (close 1009 above)",
    "client_read_buffer_size": "initial read buffer per connection, bytes",
    "client_head_timeout": "seconds a new socket has to send its request head and body (408)",
    "client_message_timeout": "seconds a fragmented WebSocket message has to complete (1008)",
    "client_close_timeout": "seconds a closed connection has to take its last bytes (then dropped)",
    "channel_max_length": "longest channel name accepted, bytes",
    "shutdown_timeout": "seconds to wait for in-flight API calls on shutdown",
    "demo": "serve the chat room demo at / on the client port (and a 'chat' namespace)",
    "gossip_bind": "IP:port of gossip (memberlist UDP+TCP), e.g. 0.0.0.0:7946 (off if empty)",
    "gossip_advertise": "IP:port other members reach this node's gossip at (default: bind address)",
    "gossip_join": "gossip seeds host:port, retried with backoff until one answers",
    "gossip_secret_keys": "base64 AES keys (16/24/32 bytes) of the gossip keyring, primary first",
    "gossip_label": "gossip label: only members with the same label talk to each other",
    "gossip_serf": "speak Serf's delegate versions and tags (join a cluster of serf agents)",
    "region": "this node's region, for the dispatcher (clients of a region get its nodes first)",
    "network": "this node's network name, published in gossip metadata",
    "client_urls": "WebSocket URLs the dispatcher gives out for this node (default: from address)",
    "cluster_events_url": "URL that receives batched gossip cluster events (POST JSON)",
    "queue_consume": "tables: [[queue_consume]] topic, channel, nsqd_tcp_addresses or "
    "lookupd_http_addresses: queue messages {channel, data} published into channels",
    "queue_publish_address": "nsqd/tidings queue TCP address for namespaces' queue_topic",
    "queue_publish_max_pending": "publications waiting for the queue at once (more: error 100)",
    "queue_rpc_topics": "table: RPC namespace -> queue topic; RPC '<ns>:<method>' is PUB'd there",
    "channel": "table: options of channels without a namespace",
    "namespaces": "tables: [namespaces.<name>] options of channels '<name>:...'",
    **PROXY_SETTING_DOCS,
}

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_KEYS = frozenset(
    {
        "history_ttl",
        "map_key_ttl",
        "map_stream_ttl",
        "shared_poll_refresh_interval",
        "shared_poll_channel_shutdown_delay",
        "shared_poll_timeout",
        "client_ping_interval",
        "client_pong_timeout",
        "client_stale_close_delay",
        "shutdown_timeout",
        "user_events_grace",
        "personal_channel_history_ttl",
        "durable_batch_window",
        "redis_connect_timeout",
        "redis_command_timeout",
        "node_heartbeat_interval",
        "node_heartbeat_timeout",
        "api_body_timeout",
        "client_head_timeout",
        "client_message_timeout",
        "client_close_timeout",
        "timeout",
        "refresh_retry",
        "admin_token_ttl",
    }
)
FSYNC_POLICIES = ("always", "batch", "never")
_TABLE_KEYS = frozenset(
    {
        "channel",
        "namespaces",
        "proxy",
        "proxies",
        "rpc_namespaces",
        "queue_consume",
        "queue_rpc_topics",
    }
)
_NAMESPACE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


_DEFAULTS = Settings()


def parse_duration(value: str) -> float:
    """Seconds in a duration like `30`, `1.5s`, `500ms`, `5m`, `1h`, `7d`."""
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    number, unit = match.groups()
    return float(number) * _DURATION_UNITS[unit or "s"]


def parse_scalar(text: str) -> Any:
    """A value given as text (env or flag): a TOML scalar if it is one, else the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def text_value(field: str, text: str) -> Any:
    """A setting given as text (env or flag), read by the setting's type.

    Strings are taken as they are; lists as a TOML array (`["a", "b"]`) or
    comma-separated (`a,b`); anything else as a TOML scalar.
    """
    default = getattr(_DEFAULTS, field, None)
    if isinstance(default, str):
        return text
    if isinstance(default, list):
        if text.lstrip().startswith("["):
            return parse_scalar(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return parse_scalar(text)


def load_file(path: Path) -> dict[str, Any]:
    """The settings in a TOML file."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config", f"file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{path}: invalid TOML: {exc}") from None


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as `TIDINGS_<NAME>` variables."""
    out: dict[str, Any] = {}
    for field in Settings.__struct_fields__:
        raw = environ.get(f"TIDINGS_{field.upper()}")
        if raw is None:
            continue
        if field in _TABLE_KEYS:
            try:
                out[field] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(field, f"TIDINGS_{field.upper()} is not JSON: {exc}") from None
        else:
            out[field] = text_value(field, raw)
    return out


def table_assignments(pairs: list[str], *, with_namespace: bool) -> dict[str, Any]:
    """`['chat.presence=true']` (or `['presence=true']`) as nested tables."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(key or pair, f"expected KEY=VALUE, got {pair!r}")
        if with_namespace:
            ns, dot, option = key.partition(".")
            if not dot or not ns or not option:
                raise ConfigError(key, f"expected NAMESPACE.OPTION=VALUE, got {pair!r}")
            out.setdefault(ns, {})[option] = parse_scalar(text)
        else:
            out[key] = parse_scalar(text)
    return out


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win; tables are merged key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
    return out


def _normalise_durations(raw: Any, path: str) -> Any:
    if isinstance(raw, Mapping):
        return {
            k: _normalise_durations(v, f"{path}.{k}" if path else str(k)) for k, v in raw.items()
        }
    key = path.rsplit(".", 1)[-1]
    if key in _DURATION_KEYS and isinstance(raw, str):
        try:
            return parse_duration(raw)
        except ValueError as exc:
            raise ConfigError(path, str(exc)) from None
    return raw


def _key_of(message: str) -> tuple[str, str]:
    """Split msgspec's `... - at `$.a.b`` into (`a.b`, the message without the path)."""
    text, sep, where = message.rpartition(" - at `$")
    if not sep:
        return "", message
    key = where.rstrip("`").lstrip(".").replace("[", ".").replace("]", "").replace("'", "")
    key = key.replace('"', "")
    unknown = re.search(r"unknown field `([^`]+)`", text)
    if unknown:
        key = f"{key}.{unknown.group(1)}" if key else unknown.group(1)
        text = "unknown setting"
    return key, text


def build(raw: Mapping[str, Any]) -> Settings:
    """Validated settings from merged raw layers."""
    normalised = _normalise_durations(raw, "")
    for key in ("redis_address", "redis_cluster_address"):
        if isinstance(normalised.get(key), str):  # one URL given as a string
            normalised[key] = [normalised[key]]
    # msgspec names a dict value `[...]`: check each namespace alone to name it in the error.
    namespaces = normalised.get("namespaces")
    for ns, opts in namespaces.items() if isinstance(namespaces, Mapping) else ():
        try:
            msgspec.convert(opts, ChannelOptions, strict=False)
        except msgspec.ValidationError as exc:
            key, text = _key_of(str(exc))
            unknown = re.search(r"unknown field `([^`]+)`", text)
            if unknown:
                key, text = unknown.group(1), "unknown setting"
            where = ".".join(p for p in ("namespaces", str(ns), key) if p)
            raise ConfigError(where, text) from None
    try:
        settings = msgspec.convert(normalised, Settings, strict=False)
    except msgspec.ValidationError as exc:
        key, text = _key_of(str(exc))
        if not key:
            unknown = re.search(r"unknown field `([^`]+)`", text)
            if unknown:
                key, text = unknown.group(1), "unknown setting"
        raise ConfigError(key, text) from None
    _check(settings)
    return settings


def personal_channel_name_format(settings: Settings) -> str:
    """The format of personal channel names: `personal_channel_format`, or, with a
    `personal_channel_namespace` and the default format, `<ns>:#{user}` (as Centrifugo)."""
    if settings.personal_channel_namespace and settings.personal_channel_format == "#{user}":
        return settings.personal_channel_namespace + ":#{user}"
    return settings.personal_channel_format


def _check_personal_and_delta(settings: Settings) -> None:
    """The personal channel namespace exists; delta types are known."""
    namespace = settings.personal_channel_namespace
    if namespace and namespace not in settings.namespaces:
        raise ConfigError("personal_channel_namespace", f"no namespace {namespace!r}")
    delta_keys = [("channel", settings.channel)]
    delta_keys += [(f"namespaces.{ns}", o) for ns, o in settings.namespaces.items()]
    for prefix, options in delta_keys:
        for kind in options.allowed_delta_types:
            if kind != "fossil":
                raise ConfigError(f"{prefix}.allowed_delta_types", f"unknown delta type {kind!r}")


def _check_ports(settings: Settings) -> None:
    for key in ("port", "api_port"):
        value = getattr(settings, key)
        if not 0 <= value <= 65535:
            raise ConfigError(key, f"not a port number: {value}")
    if settings.port == settings.api_port and settings.port != 0:
        raise ConfigError("api_port", "the API must have its own port, not the client port")


def _check(settings: Settings) -> None:
    _check_personal_and_delta(settings)
    _check_ports(settings)
    if settings.log_level not in {"debug", "info", "warning", "error"}:
        raise ConfigError("log_level", f"unknown level {settings.log_level!r}")
    if settings.log_format not in {"text", "json"}:
        raise ConfigError("log_format", f"must be text or json, not {settings.log_format!r}")
    positive = (
        "client_ping_interval",
        "client_pong_timeout",
        "client_stale_close_delay",
        "client_queue_max_size",
        "client_max_message_size",
        "client_read_buffer_size",
        "channel_max_length",
        "api_max_body_size",
        "api_body_timeout",
        "client_head_timeout",
        "client_message_timeout",
        "client_close_timeout",
        "api_batch_max_commands",
    )
    for key in positive:
        if getattr(settings, key) <= 0:
            raise ConfigError(key, "must be greater than zero")
    if settings.client_pong_timeout >= settings.client_ping_interval:
        raise ConfigError("client_pong_timeout", "must be shorter than client_ping_interval")
    non_negative = (
        "user_connection_limit",
        "client_channel_limit",
        "client_command_rate",
        "client_command_burst",
        "client_command_abuse_limit",
        "connection_rate_per_ip",
        "connection_burst_per_ip",
        "client_connections_per_ip",
        "client_connections_max",
        "user_events_grace",
        "broadcast_all_rate",
    )
    for key in non_negative:
        if getattr(settings, key) < 0:
            raise ConfigError(key, "must not be negative")
    fsync_keys = [("personal_channel_fsync", settings.personal_channel_fsync)]
    fsync_keys.append(("channel.fsync", settings.channel.fsync))
    fsync_keys += [(f"namespaces.{ns}.fsync", o.fsync) for ns, o in settings.namespaces.items()]
    for key, value in fsync_keys:
        if value not in FSYNC_POLICIES:
            raise ConfigError(key, f"must be one of {', '.join(FSYNC_POLICIES)}, not {value!r}")
    for key in ("user_events_batch_size", "user_events_queue_size"):
        if getattr(settings, key) <= 0:
            raise ConfigError(key, "must be greater than zero")
    for key in (
        "personal_channel_history_size",
        "durable_max_bytes",
        "client_history_burst",
        "history_max_streams",
    ):
        if getattr(settings, key) < 0:
            raise ConfigError(key, "must not be negative")
    _check_engine(settings)
    if "{user}" not in settings.personal_channel_format:
        raise ConfigError("personal_channel_format", "must contain {user}")
    for key in ("client_ip_allow", "client_ip_deny"):
        for index, cidr in enumerate(getattr(settings, key)):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ConfigError(f"{key}.{index}", str(exc)) from None
    if settings.user_events_url and not settings.user_events_url.startswith(
        ("http://", "https://")
    ):
        raise ConfigError("user_events_url", "must be an http:// or https:// URL")
    tables = [("channel", settings.channel)]
    tables += [(f"namespaces.{ns}", opts) for ns, opts in settings.namespaces.items()]
    for prefix, opts in tables:
        if opts.history_size < 0:
            raise ConfigError(f"{prefix}.history_size", "must not be negative")
        if opts.history_ttl < 0:
            raise ConfigError(f"{prefix}.history_ttl", "must not be negative")
        _check_subscription_type(settings, prefix, opts)
        for key in ("map_key_ttl", "map_stream_size", "map_stream_ttl"):
            if not 0 <= getattr(opts, key) <= 2**53:
                raise ConfigError(f"{prefix}.{key}", "must be between 0 and 2**53")
    _check_queue(settings, tables)
    for ns in settings.namespaces:
        if not _NAMESPACE_NAME.match(ns):
            raise ConfigError(f"namespaces.{ns}", "namespace names use letters, digits, _ . -")
    proxy_config.check(settings)
    gossip_settings.check(settings)
    if bool(settings.admin_password) != bool(settings.admin_secret):
        raise ConfigError("admin_secret", "the admin UI needs both admin_password and admin_secret")
    if settings.admin_token_ttl <= 0:
        raise ConfigError("admin_token_ttl", "must be greater than zero")


def _check_queue(settings: Settings, tables: list[tuple[str, ChannelOptions]]) -> None:
    for prefix, opts in tables:
        if opts.queue_topic:
            if not is_valid_name(opts.queue_topic):
                raise ConfigError(f"{prefix}.queue_topic", "not a valid NSQ topic name")
            if not settings.queue_publish_address:
                raise ConfigError(f"{prefix}.queue_topic", "needs queue_publish_address")
    for ns, topic in settings.queue_rpc_topics.items():
        if not is_valid_name(topic):
            raise ConfigError(f"queue_rpc_topics.{ns}", "not a valid NSQ topic name")
        if not settings.queue_publish_address:
            raise ConfigError(f"queue_rpc_topics.{ns}", "needs queue_publish_address")
    if settings.queue_publish_max_pending <= 0:
        raise ConfigError("queue_publish_max_pending", "must be greater than zero")
    for index, consume in enumerate(settings.queue_consume):
        where = f"queue_consume.{index}"
        if not is_valid_name(consume.topic + ".dead"):  # its dead-letter topic too
            raise ConfigError(f"{where}.topic", "not a valid NSQ topic name of <= 59 characters")
        if not is_valid_name(consume.channel):
            raise ConfigError(f"{where}.channel", "not a valid NSQ channel name")
        if not consume.nsqd_tcp_addresses and not consume.lookupd_http_addresses:
            raise ConfigError(where, "needs nsqd_tcp_addresses or lookupd_http_addresses")
        if consume.max_in_flight <= 0:
            raise ConfigError(f"{where}.max_in_flight", "must be greater than zero")


ENGINES = ("memory", "redis")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _check_engine(settings: Settings) -> None:
    if settings.engine not in ENGINES:
        raise ConfigError("engine", f"must be one of {', '.join(ENGINES)}, not {settings.engine!r}")
    for key in ("redis_address", "redis_cluster_address"):
        for index, url in enumerate(getattr(settings, key)):
            if not url.startswith(_REDIS_SCHEMES):
                raise ConfigError(
                    f"{key}.{index}", f"not a redis://, rediss:// or unix:// URL: {url!r}"
                )
    if settings.engine == "redis":
        if bool(settings.redis_address) == bool(settings.redis_cluster_address):
            raise ConfigError(
                "redis_address", "engine 'redis' needs redis_address or redis_cluster_address (one)"
            )
        if any(u.startswith("unix://") for u in settings.redis_cluster_address):
            raise ConfigError("redis_cluster_address", "a Redis Cluster is reached over TCP")
    if "{" in settings.redis_prefix or "}" in settings.redis_prefix or not settings.redis_prefix:
        raise ConfigError("redis_prefix", "must be non-empty and without braces")
    for key in (
        "redis_connect_timeout",
        "redis_command_timeout",
        "node_heartbeat_interval",
        "node_heartbeat_timeout",
    ):
        if getattr(settings, key) <= 0:
            raise ConfigError(key, "must be greater than zero")
    if settings.durable_replicas < 0:
        raise ConfigError("durable_replicas", "must not be negative")
    if settings.node_heartbeat_timeout <= settings.node_heartbeat_interval:
        raise ConfigError("node_heartbeat_timeout", "must be longer than node_heartbeat_interval")
    _check_workers(settings)  # several workers are nodes of one engine


def worker_count(settings: Settings) -> int:
    """The number of worker processes `workers` asks for ("auto": one per core)."""
    if settings.workers == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    return int(settings.workers)


def _check_workers(settings: Settings) -> None:
    value = settings.workers
    if isinstance(value, bool) or (isinstance(value, str) and value != "auto"):
        raise ConfigError("workers", f"a number of processes or 'auto', not {value!r}")
    if isinstance(value, int) and not 1 <= value <= 1024:
        raise ConfigError("workers", "must be between 1 and 1024 (or 'auto')")
    if worker_count(settings) > 1 and settings.gossip_bind:
        raise ConfigError("gossip_bind", "gossip runs with one worker only (workers = 1)")


def _check_subscription_type(settings: Settings, prefix: str, opts: ChannelOptions) -> None:
    if opts.subscription_type not in ("stream", "map", "shared_poll"):
        raise ConfigError(f"{prefix}.subscription_type", "must be 'stream', 'map' or 'shared_poll'")
    if opts.subscription_type == "shared_poll":
        if not opts.shared_poll_endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{prefix}.shared_poll_endpoint", "must be an http(s):// URL")
        if not 0.01 <= opts.shared_poll_refresh_interval <= 86400:
            raise ConfigError(f"{prefix}.shared_poll_refresh_interval", "0.01s to 1d")
        if not 1 <= opts.shared_poll_refresh_batch_size <= 100_000:
            raise ConfigError(f"{prefix}.shared_poll_refresh_batch_size", "1 to 100000")
        if not 0 < opts.shared_poll_timeout <= 600:
            raise ConfigError(f"{prefix}.shared_poll_timeout", "above 0, at most 600s")
        if not settings.shared_poll_hmac_secret_key:
            raise ConfigError("shared_poll_hmac_secret_key", "required by shared_poll channels")


def load(
    config_file: Path | None,
    environ: Mapping[str, str],
    flags: Mapping[str, Any],
) -> Settings:
    """Settings from defaults < file < environment < flags."""
    file_layer = load_file(config_file) if config_file is not None else {}
    return build(merge(file_layer, from_environment(environ), flags))
