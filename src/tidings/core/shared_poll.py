"""Shared poll channels (Centrifugo v6 `shared_poll`): one back end poll per channel for all.

A subscriber (`SubscribeRequest.type == 4`) tracks keys with `sub_refresh`
(`type: 1`, batches of keys each signed by the application's back end) and
untracks them (`type: 2`). Every `shared_poll_refresh_interval` the node
asks the back end once per channel for the data of every key tracked there
(in batches of `shared_poll_refresh_batch_size`), whatever the number of
subscribers; keys whose version went up (or whose data changed, for a back
end without versions) are pushed to the connections tracking them, and
removed keys are pushed as removals. When the last tracker leaves, polling
stops (after `shared_poll_channel_shutdown_delay`).

Track signatures are Centrifugo's: `"<iat>:<expiry>:<hex>"` where hex is
HMAC-SHA256 with `shared_poll_hmac_secret_key` over
`iat \\0 expiry \\0 user \\0 channel \\0 hex(sha256(keys joined by \\0))`.

Modes (Centrifugo's `shared_poll.mode`): "versionless" (the default) asks
for keys only and finds changes by comparing data (each change is a new
version of the key); "versioned" sends each key's version and pushes only
keys whose version went up.

`shared_poll_publish` (versioned mode, with `shared_poll_publish_enabled`)
pushes a key's new data without waiting for the next poll. As in Centrifugo,
each node polls for its own trackers, and a published update goes through
the broker to every node (`published`), which pushes it to its trackers of
the key if the version is newer than theirs.

A key nobody tracked here before (a cold key) is polled at once, not at the
next refresh, as Centrifugo's cold key notification does: the keys tracked
during one loop turn go in one request. A tracked key lives as long as its
signature (the expiry in it; a track reply says when the earliest one runs
out, `expires`/`ttl`, so that the SDK tracks again with a fresh signature)
plus `shared_poll_track_expired_extra_delay`; after that it is untracked
silently, as in Centrifugo.

A back end that is down, slow or answers garbage costs subscribers only the
updates of that poll: the failure is logged once per channel until it
recovers, and the next poll tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tidings.core.batches import EncodedOnce
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode
from tidings.protocol.centrifuge.messages import (
    Publication,
    Push,
    Reply,
    SubRefreshRequest,
    SubRefreshResult,
    SubscribeRequest,
    SubscribeResult,
    raw,
)
from tidings.store.keyed import InvalidKey, check_key
from tidings.upstream.shared_poll import BackendError, PolledItem, PollItem, SharedPollBackend

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tidings.core.channels import Channel
    from tidings.core.client import Client
    from tidings.core.node import Node

log = logging.getLogger(__name__)

#: SubscribeRequest.type of a shared poll subscription.
TYPE_SHARED_POLL = 4
TRACK, UNTRACK = 1, 2
#: Seconds a signature is still accepted after its expiry (clock skew).
GRACE = 5
#: Seconds a track outlives its signature's expiry when the namespace sets none
#: (Centrifugo's default of `track_expired_extra_delay`).
EXPIRED_EXTRA_DELAY = 25.0


def sign(secret: str, user: str, channel: str, keys: list[str], *, iat: int, expiry: int) -> str:
    """A track signature, as the application's back end makes it."""
    keys_hash = hashlib.sha256("\x00".join(keys).encode()).hexdigest()
    payload = f"{iat}\x00{expiry}\x00{user}\x00{channel}\x00{keys_hash}".encode()
    mac = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return f"{iat}:{expiry}:{mac}"


def signature_valid(
    secret: str, user: str, channel: str, keys: list[str], *, signature: str, now: float
) -> bool:
    parts = signature.split(":")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts[:2]):
        return False
    iat, expiry = int(parts[0]), int(parts[1])
    if expiry and expiry + GRACE < now:
        return False
    if expiry > 2**63 or iat > 2**63:
        return False
    expected = sign(secret, user, channel, keys, iat=iat, expiry=expiry)
    return hmac.compare_digest(expected.encode(), signature.encode())


@dataclass(slots=True)
class _Key:
    version: int = 0
    data: bytes = b""
    #: Tracking clients -> when their signature expires (unix seconds; 0: never).
    trackers: dict[Client, int] = field(default_factory=dict)


@dataclass(slots=True)
class _PolledChannel:
    channel: Channel
    epoch: str
    keys: dict[str, _Key] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    idle_since: float = 0.0
    failing: bool = False
    polls: int = 0
    #: Keys tracked for the first time, polled at once (see `_notify`).
    cold: set[str] = field(default_factory=set)
    cold_task: asyncio.Task[None] | None = None


class SharedPolls:
    """The shared poll channels of one node (see the module docstring)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._channels: dict[str, _PolledChannel] = {}
        self._backends: dict[tuple[str, float], SharedPollBackend] = {}

    def polls(self, name: str) -> int:
        """How many polls of channel `name` were made (for tests and stats)."""
        state = self._channels.get(name)
        return state.polls if state is not None else 0

    def polling(self, name: str) -> bool:
        state = self._channels.get(name)
        return state is not None and state.task is not None and not state.task.done()

    async def subscribe(
        self,
        client: Client,
        channel: Channel,
        req: SubscribeRequest,
        *,
        info: bytes = b"",
        expire_at: int = 0,
    ) -> SubscribeResult:
        if channel.options.subscription_type != "shared_poll" or req.type != TYPE_SHARED_POLL:
            # Centrifugo's answer to a subscription type the namespace does not take.
            raise ReplyError(ErrorCode.PERMISSION_DENIED, "shared poll channels need type 4")
        result = await self.node.subscriptions.subscribe_client(
            client, channel, info=info, expire_at=expire_at
        )
        state = self._state(channel)
        result.type, result.epoch = TYPE_SHARED_POLL, state.epoch
        return result

    def _state(self, channel: Channel) -> _PolledChannel:
        state = self._channels.get(channel.name)
        if state is None:
            # Versionless: the node's own epoch. Versioned: the publisher's (back end
            # answers, shared_poll_publish), unknown until the first one comes.
            versioned = channel.options.shared_poll_mode == "versioned"
            state = _PolledChannel(channel, "" if versioned else secrets.token_hex(4))
            self._channels[channel.name] = state
        return state

    async def refresh(self, client: Client, req: SubRefreshRequest) -> SubRefreshResult:
        """A track (1) or untrack (2) request of a subscriber."""
        sub = client.subscriptions.get(req.channel)
        if sub is None or not sub.ready:
            raise ReplyError(ErrorCode.PERMISSION_DENIED, "not subscribed")
        state = self._channels.get(req.channel)
        if state is None:
            channel = self.node.rules.resolve(req.channel)
            if channel.options.subscription_type != "shared_poll":
                raise ReplyError(ErrorCode.PERMISSION_DENIED, "not subscribed")
            state = self._state(channel)
        result = SubRefreshResult()
        for key in req.untrack or ():
            self._untrack(state, client, key)
        if req.type == UNTRACK:
            return result
        if req.type != TRACK:
            raise ReplyError(ErrorCode.BAD_REQUEST, f"unknown sub_refresh type {req.type}")
        opts = state.channel.options
        secret = self.node.settings.shared_poll_hmac_secret_key
        wanted: list[tuple[str, int, int]] = []
        now = time.time()
        for batch in req.track or ():
            items = batch.items or []
            try:
                keys = [check_key(item.key) for item in items]
            except InvalidKey as exc:
                raise ReplyError(ErrorCode.BAD_REQUEST, str(exc)) from None
            if any(not 0 <= item.version < 2**63 for item in items):
                raise ReplyError(ErrorCode.BAD_REQUEST, "version out of range")
            signed = batch.signature
            if not signature_valid(
                secret, client.user, req.channel, keys, signature=signed, now=now
            ):
                raise ReplyError(ErrorCode.PERMISSION_DENIED, "invalid track signature")
            expiry = int(signed.split(":")[1])
            wanted += [(item.key, item.version, expiry) for item in items]
        tracked = sum(1 for key in state.keys.values() if client in key.trackers)
        new = {k for k, _, _ in wanted if client not in state.keys.get(k, _Key()).trackers}
        if tracked + len(new) > opts.shared_poll_max_keys_per_connection:
            limit = opts.shared_poll_max_keys_per_connection
            raise ReplyError(ErrorCode.LIMIT_EXCEEDED, f"more than {limit} tracked keys")
        known: list[Publication] = []
        for key, version, expiry in wanted:  # a key in several batches: the last one's expiry
            entry = state.keys.get(key)
            if entry is None:
                entry = state.keys[key] = _Key()
                state.cold.add(key)
            entry.trackers[client] = expiry
            if entry.version > version and entry.data:
                known.append(_publication(key, entry))
        result.items = known or None
        expiries = [expiry for _, _, expiry in wanted if expiry]
        if expiries:
            result.expires, result.ttl = True, max(0, min(expiries) - int(now))
        self._start(state)
        self._notify(state)
        return result

    def _untrack(self, state: _PolledChannel, client: Client, key: str) -> None:
        entry = state.keys.get(key)
        if entry is not None:
            entry.trackers.pop(client, None)
            if not entry.trackers:
                del state.keys[key]

    def _start(self, state: _PolledChannel) -> None:
        if state.task is None or state.task.done():
            state.idle_since = 0.0
            state.task = asyncio.get_running_loop().create_task(self._poll_forever(state))

    async def _poll_forever(self, state: _PolledChannel) -> None:
        opts = state.channel.options
        while True:
            await asyncio.sleep(opts.shared_poll_refresh_interval)
            self._prune(state)
            if not state.keys:
                now = time.monotonic()
                state.idle_since = state.idle_since or now
                if now - state.idle_since >= opts.shared_poll_channel_shutdown_delay:
                    # Polling stops; the state stays while subscribers may track again.
                    if not self.node.hub.num_subscribers(state.channel.name):
                        self._channels.pop(state.channel.name, None)
                    return
                continue
            state.idle_since = 0.0
            try:
                await self.poll(state)
            except Exception:  # the poller of one channel never dies of one bad answer
                log.exception("shared poll of %r failed", state.channel.name)

    def _notify(self, state: _PolledChannel) -> None:
        """Poll the cold keys at once, in one request for those of this loop turn."""
        if state.cold and (state.cold_task is None or state.cold_task.done()):
            state.cold_task = asyncio.get_running_loop().create_task(self._poll_cold(state))

    async def _poll_cold(self, state: _PolledChannel) -> None:
        await asyncio.sleep(0)  # the keys tracked in this loop turn go together
        keys, state.cold = state.cold, set()
        try:
            await self.poll(state, [k for k in keys if k in state.keys])
        except Exception:
            log.exception("shared poll of %r failed", state.channel.name)

    def _prune(self, state: _PolledChannel) -> None:
        """Forget connections that left, tracks whose signature expired, untracked keys."""
        name = state.channel.name
        delay = state.channel.options.shared_poll_track_expired_extra_delay or EXPIRED_EXTRA_DELAY
        now = time.time()
        for key, entry in list(state.keys.items()):
            entry.trackers = {
                c: expiry
                for c, expiry in entry.trackers.items()
                if not c.closed
                and name in c.subscriptions
                and not (expiry and now > expiry + delay)
            }
            if not entry.trackers:
                del state.keys[key]

    async def poll(self, state: _PolledChannel, only: list[str] | None = None) -> None:
        """Ask the back end once (in batches) for every tracked key (or those `only`) and
        push the changes."""
        opts = state.channel.options
        name = state.channel.name
        backend = self._backend(opts.shared_poll_endpoint, opts.shared_poll_timeout)
        if only is None:
            keys = list(state.keys.items())
        else:
            keys = [(k, state.keys[k]) for k in only if k in state.keys]
        if not keys:
            return
        size = opts.shared_poll_refresh_batch_size
        versioned = opts.shared_poll_mode == "versioned"
        state.polls += 1
        for start in range(0, len(keys), size):
            batch = [
                PollItem(key=k, version=e.version if versioned else 0)
                for k, e in keys[start : start + size]
            ]
            try:
                result = await backend.refresh(name, batch)
            except BackendError as exc:
                if not state.failing:
                    log.warning("shared poll of %r: %s (subscribers keep their data)", name, exc)
                state.failing = True
                return
            if state.failing:
                log.info("shared poll of %r: the back end answers again", name)
                state.failing = False
            if versioned:
                self._flip(state, result.epoch)
            self._apply(state, {k for k, _ in keys[start : start + size]}, result.items)

    def _flip(self, state: _PolledChannel, epoch: str) -> None:
        """A new publisher epoch voids every version held: the trackers start over.

        As in Centrifugo, they are unsubscribed with "insufficient state" (2500),
        which SDKs answer by subscribing and tracking again from version 0. The
        first epoch a fresh channel state learns is taken as it is: nobody holds
        versions of that state yet.
        """
        if epoch == state.epoch:
            return
        previous, state.epoch = state.epoch, epoch
        if not previous:
            return
        name = state.channel.name
        clients = {c for entry in state.keys.values() for c in entry.trackers}
        clients |= set(self.node.hub.subscribers(name))
        state.keys.clear()
        for client in clients:
            self.node.peers.spawn(
                self.node.subscriptions.unsubscribe_client(
                    client, name, push=True, code=2500, reason="insufficient state"
                ),
                "shared poll epoch change",
            )

    def _apply(self, state: _PolledChannel, asked: set[str], items: list[PolledItem]) -> None:
        name = state.channel.name
        versioned = state.channel.options.shared_poll_mode == "versioned"
        for item in items:
            key = item.key
            entry = state.keys.get(key)
            if key not in asked or entry is None:
                continue  # the back end answered for a key nobody asked about
            data = bytes(item.data)
            if item.removed:
                pub = Publication(key=key, removed=True, version=entry.version + 1)
                del state.keys[key]
            else:
                version = item.version
                if not data or not 0 <= version < 2**63:
                    continue
                if version == 0 and not versioned:
                    # A back end without versions: a change of data is a new version.
                    if data == entry.data:
                        continue
                    version = entry.version + 1
                elif version <= entry.version:
                    continue
                entry.version, entry.data = version, data
                pub = _publication(key, entry, state.epoch if versioned else "")
            _push(name, pub, entry.trackers)

    # --- shared_poll_publish ------------------------------------------------------------

    async def publish(
        self, name: str, key: str, version: int, data: bytes, epoch: str = ""
    ) -> None:
        """Push `key`'s data at `version` to its trackers on every node (the API's call).

        107 unless `name` is a shared poll channel; 108 unless it allows publishing.
        """
        channel = self.node.rules.resolve(name)
        opts = channel.options
        if opts.subscription_type != "shared_poll":
            raise ReplyError(ErrorCode.BAD_REQUEST, "not a shared poll channel")
        if not opts.shared_poll_publish_enabled:
            raise ReplyError(ErrorCode.NOT_AVAILABLE)
        try:
            check_key(key)
        except InvalidKey as exc:
            raise ReplyError(ErrorCode.BAD_REQUEST, str(exc)) from None
        if not 0 < version < 2**63:
            raise ReplyError(ErrorCode.BAD_REQUEST, "version must be 1 to 2**63-1")
        # Through the broker, stored nowhere: it reaches every node with subscribers.
        pub = Publication(data=raw(data), key=key, version=version, epoch=epoch)
        await self.node.broker.publish(name, pub)

    def published(self, name: str, pub: Publication) -> bool:
        """Take a published update from the broker; False if `name` is no shared poll channel.

        It is pushed to this node's trackers of the key if newer than what they have.
        """
        state = self._channels.get(name)
        if state is None:
            try:
                return self.node.rules.resolve(name).options.subscription_type == "shared_poll"
            except ReplyError:
                return False
        self._flip(state, pub.epoch)
        entry = state.keys.get(pub.key)
        if entry is None or pub.version <= entry.version:
            return True  # not tracked here, or they already have it
        entry.version, entry.data = pub.version, bytes(pub.data)
        _push(name, _publication(pub.key, entry, state.epoch), entry.trackers)
        return True

    def _backend(self, endpoint: str, timeout: float) -> SharedPollBackend:
        backend = self._backends.get((endpoint, timeout))
        if backend is None:
            backend = self._backends[(endpoint, timeout)] = SharedPollBackend(
                self.node.upstream.http, endpoint, timeout=timeout
            )
        return backend

    async def close(self) -> None:
        for state in list(self._channels.values()):
            for task in (state.task, state.cold_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        self._channels.clear()


def _push(name: str, pub: Publication, trackers: Iterable[Client]) -> None:
    encoded = EncodedOnce(Reply(push=Push(channel=name, pub=pub)))
    for client in list(trackers):
        if not client.closed:
            client.enqueue(encoded.get(client.codec))


def _publication(key: str, entry: _Key, epoch: str = "") -> Publication:
    return Publication(data=raw(entry.data), key=key, version=entry.version, epoch=epoch)
