"""The rules settings must follow, checked once at start-up (`check`).

A bad value raises one `ConfigError` that names the key.
"""

from __future__ import annotations

import ipaddress
import re

from tidings.channel_options import ChannelOptions
from tidings.cluster import settings as gossip_settings
from tidings.errors import ConfigError
from tidings.fsync import FSYNC_POLICIES
from tidings.protocol.nsq.names import is_valid_name
from tidings.settings import Settings, worker_count
from tidings.upstream import proxy_config

_NAMESPACE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
ENGINES = ("memory", "redis")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def _check_personal_and_delta(settings: Settings) -> None:
    """The personal channel namespace exists; delta types are known; tags filters fit."""
    namespace = settings.personal_channel_namespace
    if namespace and namespace not in settings.namespaces:
        raise ConfigError("personal_channel_namespace", f"no namespace {namespace!r}")
    delta_keys = [("channel", settings.channel)]
    delta_keys += [(f"namespaces.{ns}", o) for ns, o in settings.namespaces.items()]
    for prefix, options in delta_keys:
        for kind in options.allowed_delta_types:
            if kind != "fossil":
                raise ConfigError(f"{prefix}.allowed_delta_types", f"unknown delta type {kind!r}")
        if options.allow_tags_filter and options.subscription_type != "stream":
            raise ConfigError(
                f"{prefix}.allow_tags_filter",
                "tags filters apply to stream channels only, not to "
                f"subscription_type {options.subscription_type!r}",
            )


def _check_ports(settings: Settings) -> None:
    for key in ("port", "api_port"):
        value = getattr(settings, key)
        if not 0 <= value <= 65535:
            raise ConfigError(key, f"not a port number: {value}")
    if settings.port == settings.api_port and settings.port != 0:
        raise ConfigError("api_port", "the API must have its own port, not the client port")


def check(settings: Settings) -> None:
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


def _check_workers(settings: Settings) -> None:
    value = settings.workers
    if isinstance(value, bool) or (isinstance(value, str) and value != "auto"):
        raise ConfigError("workers", f"a number of processes or 'auto', not {value!r}")
    if isinstance(value, int) and not 1 <= value <= 1024:
        raise ConfigError("workers", "must be between 1 and 1024 (or 'auto')")
    if worker_count(settings) > 1 and settings.gossip_bind:
        raise ConfigError("gossip_bind", "gossip runs with one worker only (workers = 1)")


_SUBSCRIPTION_TYPES = ("stream", "map", "map_clients", "map_users", "shared_poll")


def _check_subscription_type(settings: Settings, prefix: str, opts: ChannelOptions) -> None:
    if opts.subscription_type not in _SUBSCRIPTION_TYPES:
        raise ConfigError(f"{prefix}.subscription_type", f"must be one of {_SUBSCRIPTION_TYPES}")
    for key, kind in (
        ("map_clients_presence_channel_prefix", "map_clients"),
        ("map_users_presence_channel_prefix", "map_users"),
    ):
        target = getattr(opts, key)
        if not target:
            continue
        ns = target.split(":", 1)[0] if ":" in target else ""
        options = settings.namespaces.get(ns) if ns else settings.channel
        if options is None or options.subscription_type != kind:
            raise ConfigError(
                f"{prefix}.{key}", f"namespace {ns!r} must have subscription_type {kind!r}"
            )
    if opts.map_remove_client_on_unsubscribe and opts.subscription_type not in (
        "map",
        "map_clients",
        "map_users",
    ):
        raise ConfigError(f"{prefix}.map_remove_client_on_unsubscribe", "needs a map namespace")
    if opts.subscription_type in ("map_clients", "map_users") and opts.map_key_ttl <= 0:
        raise ConfigError(
            f"{prefix}.map_key_ttl",
            "required by map presence channels: it removes the entries of a node that died "
            "(and of users, who are not removed when they leave)",
        )
    if opts.subscription_type == "shared_poll":
        if opts.shared_poll_mode not in ("", "versionless", "versioned"):
            raise ConfigError(f"{prefix}.shared_poll_mode", "'versionless' or 'versioned'")
        if opts.shared_poll_publish_enabled and opts.shared_poll_mode != "versioned":
            raise ConfigError(
                f"{prefix}.shared_poll_publish_enabled",
                "needs shared_poll_mode = 'versioned' (published data carries versions)",
            )
        if not opts.shared_poll_endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{prefix}.shared_poll_endpoint", "must be an http(s):// URL")
        if not 0.01 <= opts.shared_poll_refresh_interval <= 86400:
            raise ConfigError(f"{prefix}.shared_poll_refresh_interval", "0.01s to 1d")
        if not 1 <= opts.shared_poll_refresh_batch_size <= 100_000:
            raise ConfigError(f"{prefix}.shared_poll_refresh_batch_size", "1 to 100000")
        if not 0 < opts.shared_poll_timeout <= 600:
            raise ConfigError(f"{prefix}.shared_poll_timeout", "above 0, at most 600s")
        if not 0 <= opts.shared_poll_track_expired_extra_delay <= 86400:
            raise ConfigError(f"{prefix}.shared_poll_track_expired_extra_delay", "0 to 1d")
        if not settings.shared_poll_hmac_secret_key:
            raise ConfigError("shared_poll_hmac_secret_key", "required by shared_poll channels")
