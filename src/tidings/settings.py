"""`Settings`: everything `tidings serve` can be told, with a line of help per setting.

`tidings.config` reads them (file, environment, flags); `tidings.settings_rules`
checks them.
"""

from __future__ import annotations

import os

import msgspec

from tidings.channel_options import ChannelOptions
from tidings.upstream.proxy_config import (
    PROXY_SETTING_DOCS,
    ProxyEndpoint,
    ProxySettings,
    RpcNamespace,
)


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


def personal_channel_name_format(settings: Settings) -> str:
    """The format of personal channel names: `personal_channel_format`, or, with a
    `personal_channel_namespace` and the default format, `<ns>:#{user}` (as Centrifugo)."""
    if settings.personal_channel_namespace and settings.personal_channel_format == "#{user}":
        return settings.personal_channel_namespace + ":#{user}"
    return settings.personal_channel_format


def worker_count(settings: Settings) -> int:
    """The number of worker processes `workers` asks for ("auto": one per usable core)."""
    if settings.workers == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    return int(settings.workers)


def durable_wanted(settings: Settings) -> bool:
    """Whether some channels are durable (personal channels or a namespace)."""
    return (settings.personal_channel and settings.personal_channel_durable) or any(
        o.durable for o in (settings.channel, *settings.namespaces.values())
    )


def admin_enabled(settings: Settings) -> bool:
    """Whether the admin web UI is on (it needs both a password and a secret)."""
    return bool(settings.admin_password and settings.admin_secret)
