"""Options of the channels of one namespace (`[namespaces.<name>]`) or of channels without one.

`tidings.settings.Settings` holds them; `tidings.settings_rules` checks them.
"""

from __future__ import annotations

import msgspec

from tidings.upstream.proxy_config import CHANNEL_PROXY_OPTION_DOCS


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
    #: Map presence (Centrifugo v6): subscribers of `<ch>` are kept, keyed by client (or
    #: user), in map channel `<prefix><ch>` of a "map_clients" (or "map_users") namespace.
    map_clients_presence_channel_prefix: str = ""
    map_users_presence_channel_prefix: str = ""
    #: Map channels: a client's key (its client id) is removed when it leaves.
    map_remove_client_on_unsubscribe: bool = False
    #: subscription_type "shared_poll": the back end polled once per channel for all.
    shared_poll_endpoint: str = ""
    shared_poll_refresh_interval: float = 5.0
    shared_poll_refresh_batch_size: int = 1000
    shared_poll_max_keys_per_connection: int = 1000
    shared_poll_channel_shutdown_delay: float = 0.0
    shared_poll_timeout: float = 5.0
    #: How long a tracked key outlives its signature's expiry (0: Centrifugo's 25 s).
    shared_poll_track_expired_extra_delay: float = 25.0
    #: "" / "versionless" (the back end gives no versions) or "versioned".
    shared_poll_mode: str = ""
    shared_poll_publish_enabled: bool = False
    subscribe_proxy_enabled: bool = False
    subscribe_proxy_name: str = ""
    publish_proxy_enabled: bool = False
    publish_proxy_name: str = ""
    sub_refresh_proxy_enabled: bool = False
    sub_refresh_proxy_name: str = ""
    allowed_delta_types: tuple[str, ...] = ()
    delta_publish: bool = False
    #: Subscribers may send a tags filter (`tf`): they get only the publications it matches.
    allow_tags_filter: bool = False

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
    "subscription_type": "'stream' (default), 'map' (keyed state, map subscriptions), "
    "'map_clients' / 'map_users' (map presence) or 'shared_poll'",
    "map_clients_presence_channel_prefix": "map presence: subscribers of <ch> are kept, keyed by "
    "client, in channel <prefix><ch> (a 'map_clients' namespace)",
    "map_users_presence_channel_prefix": "map presence: users subscribed to <ch> are kept, keyed "
    "by user, in channel <prefix><ch> (a 'map_users' namespace)",
    "map_remove_client_on_unsubscribe": "map channels: remove the key named by a client's id "
    "when it unsubscribes or disconnects (cursors, per-connection state)",
    "shared_poll_mode": "shared_poll channels: 'versionless' (default: changes found by data) "
    "or 'versioned' (the back end gives versions)",
    "shared_poll_publish_enabled": "shared_poll channels: allow shared_poll_publish (versioned "
    "mode only); updates reach every node",
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
    "shared_poll_track_expired_extra_delay": "shared_poll channels: a tracked key is untracked "
    "this long after its signature expired, unless tracked again with a fresh one (0: 25s)",
    "fsync": "durable write policy: 'always' (fsync each), 'batch' (group commit), 'never'",
    "queue_topic": "forward client publications to this queue topic (needs queue_publish_address)",
    **CHANNEL_PROXY_OPTION_DOCS,
    "allowed_delta_types": "delta compressions subscribers may ask for: [] or ['fossil']",
    "delta_publish": "send every publication as a delta to subscribers that negotiated one",
    "allow_tags_filter": "subscribers may send a publication tags filter (tf) and then get only "
    "the publications whose tags match it (live and recovered)",
}
