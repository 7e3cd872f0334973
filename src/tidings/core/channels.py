"""Channel names, namespaces and who may do what in a channel.

Name grammar (as in Centrifugo): an optional `$` prefix marks a private
channel (subscribing needs a subscription token); `ns:` selects namespace
`ns` and its options; a `#` boundary makes a user-limited channel whose
users follow it, comma-separated (`dialog#42,43`, or `#42`, a personal
channel). Channels without a namespace use the `[channel]` options.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from tidings.channel_options import ChannelOptions
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode
from tidings.settings import Settings, personal_channel_name_format

PRIVATE_PREFIX = "$"
NAMESPACE_BOUNDARY = ":"
USER_BOUNDARY = "#"
USER_SEPARATOR = ","
#: Personal channels kept resolved at most (see `ChannelRules.resolve`).
RECENT_PERSONAL = 1024


@dataclass(frozen=True, slots=True)
class Channel:
    """A parsed, valid channel name with its options."""

    name: str
    namespace: str
    options: ChannelOptions
    private: bool
    allowed_users: frozenset[str] | None

    @property
    def user_limited(self) -> bool:
        return self.allowed_users is not None


class ChannelRules:
    """Resolves channel names to options and answers permission questions."""

    def __init__(self, settings: Settings) -> None:
        self._default = settings.channel
        self._namespaces = dict(settings.namespaces)
        self._max_length = settings.channel_max_length
        self._cache: dict[str, Channel] = {}
        self._recent_personal: dict[str, Channel] = {}
        self._personal: tuple[str, str] | None = None
        if settings.personal_channel:
            prefix, _, suffix = personal_channel_name_format(settings).partition("{user}")
            self._personal = (prefix, suffix)
        #: Options of personal channels: a durable inbox with recovery.
        self.personal_options = ChannelOptions(
            history_size=settings.personal_channel_history_size,
            history_ttl=settings.personal_channel_history_ttl,
            durable=settings.personal_channel_durable,
            fsync=settings.personal_channel_fsync,
            force_recovery=True,
            allow_user_limited_channels=True,
            # Its only subscribers are its user's connections: they may page through
            # it (a replay too large for one reply starts later, see
            # Subscriptions.subscribe_client).
            allow_history_for_subscriber=True,
        )
        if settings.personal_channel_namespace:
            # Like any channel of that namespace (presence, join/leave, publish, history).
            options = settings.namespaces[settings.personal_channel_namespace]
            self.personal_options = msgspec.structs.replace(
                options, allow_user_limited_channels=True
            )

    def personal_user(self, name: str) -> str:
        """The user whose personal channel `name` is, or "" if it is not one."""
        if self._personal is None:
            return ""
        prefix, suffix = self._personal
        if len(name) <= len(prefix) + len(suffix):
            return ""
        if not (name.startswith(prefix) and name.endswith(suffix)):
            return ""
        user = name[len(prefix) : len(name) - len(suffix)]
        return "" if USER_SEPARATOR in user else user

    def resolve(self, name: str) -> Channel:
        """The channel called `name`. Raises ReplyError 107 (bad name) or 102 (no namespace)."""
        channel = self._cache.get(name) or self._recent_personal.get(name)
        if channel is not None:
            return channel
        channel = self._parse(name)
        if channel.options is self.personal_options:
            # Personal channels are one per user, so one per connection: only the
            # recently used ones are kept (one publication resolves its channel
            # several times), not ~350 bytes for every user ever seen. This also
            # leaves the main cache's room to the shared channels.
            if len(self._recent_personal) >= RECENT_PERSONAL:
                self._recent_personal.clear()
            self._recent_personal[name] = channel
        elif len(self._cache) < 100_000:
            self._cache[name] = channel
        return channel

    def _parse(self, name: str) -> Channel:
        if not name:
            raise ReplyError(ErrorCode.BAD_REQUEST, "channel required")
        if len(name.encode()) > self._max_length:
            raise ReplyError(ErrorCode.BAD_REQUEST, f"channel name longer than {self._max_length}")
        # Every whitespace character but the space is also unprintable.
        if not name.isprintable() or " " in name:
            raise ReplyError(ErrorCode.BAD_REQUEST, "channel name has whitespace or control chars")
        private = name.startswith(PRIVATE_PREFIX)
        body = name[1:] if private else name
        namespace, sep, _ = body.partition(NAMESPACE_BOUNDARY)
        if not sep or USER_BOUNDARY in namespace:
            namespace = ""
        if namespace:
            options = self._namespaces.get(namespace)
            if options is None:
                raise ReplyError(ErrorCode.UNKNOWN_CHANNEL)  # "unknown channel", as Centrifugo
        else:
            options = self._default
        allowed: frozenset[str] | None = None
        if USER_BOUNDARY in body:
            users = body.rpartition(USER_BOUNDARY)[2]
            allowed = frozenset(u for u in users.split(USER_SEPARATOR) if u)
        user = self.personal_user(name)
        if user:
            return Channel(name, namespace, self.personal_options, private, frozenset({user}))
        return Channel(name, namespace, options, private, allowed)

    # --- permissions (client side; the server API may do anything) ---------------

    @staticmethod
    def check_subscribe(channel: Channel, user: str, has_token: bool) -> None:
        """Raise 103 unless `user` may subscribe without a token (or has one)."""
        opts = channel.options
        if channel.private:
            if not has_token:
                raise ReplyError(ErrorCode.PERMISSION_DENIED, "private channel needs a token")
            return
        if has_token:
            return
        if channel.allowed_users is not None:
            if opts.allow_user_limited_channels and user and user in channel.allowed_users:
                return
            raise ReplyError(ErrorCode.PERMISSION_DENIED)
        if opts.allow_subscribe_for_client and (user or opts.allow_subscribe_for_anonymous):
            return
        raise ReplyError(ErrorCode.PERMISSION_DENIED)

    @staticmethod
    def check_publish(channel: Channel, user: str, subscribed: bool) -> None:
        opts = channel.options
        if not user and not opts.allow_publish_for_anonymous:
            raise ReplyError(ErrorCode.PERMISSION_DENIED)
        if channel.allowed_users is not None and user not in channel.allowed_users:
            raise ReplyError(ErrorCode.PERMISSION_DENIED, "channel is limited to other users")
        if channel.private and not subscribed:
            raise ReplyError(ErrorCode.PERMISSION_DENIED, "private channel: subscribe first")
        if opts.allow_publish_for_client or (opts.allow_publish_for_subscriber and subscribed):
            return
        raise ReplyError(ErrorCode.PERMISSION_DENIED)

    @staticmethod
    def check_presence(channel: Channel, subscribed: bool) -> None:
        opts = channel.options
        if not opts.presence:
            raise ReplyError(ErrorCode.NOT_AVAILABLE, "not available")
        if opts.allow_presence_for_client or (opts.allow_presence_for_subscriber and subscribed):
            return
        raise ReplyError(ErrorCode.PERMISSION_DENIED)

    @staticmethod
    def check_history(channel: Channel, subscribed: bool) -> None:
        opts = channel.options
        if not opts.history_enabled:
            raise ReplyError(ErrorCode.NOT_AVAILABLE, "not available")
        if opts.allow_history_for_client or (opts.allow_history_for_subscriber and subscribed):
            return
        raise ReplyError(ErrorCode.PERMISSION_DENIED)
