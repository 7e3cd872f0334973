"""Map presence (Centrifugo v6): who is subscribed to a channel, as a map channel.

A namespace with `map_clients_presence_channel_prefix = "pc:"` keeps every
subscriber of its channel `<ch>` in map channel `pc:<ch>` (a namespace with
`subscription_type = "map_clients"`), keyed by client id, the entry carrying
the subscriber's ClientInfo. With `map_users_presence_channel_prefix` the
users are kept in a "map_users" channel, keyed by user id (anonymous clients
are not), an entry per user however many connections it has.

Watchers subscribe to those channels with `type` 2 (clients) or 3 (users),
as the SDKs' `newMapClientsSubscription` / `newMapUsersSubscription` do, and
get the state then joins and leaves as map updates (a leave is a removal).

As in Centrifugo: an entry is written only when new (`if_new`), and while
the subscription lasts its key TTL is refreshed without a stream entry. A
client's entry is removed when it unsubscribes or disconnects; a user's is
not, it expires with the presence namespace's `map_key_ttl` (a reconnect
within it is no leave and join). The key TTL is also what cleans up after a
node that died.

A map namespace with `map_remove_client_on_unsubscribe` gets the same
treatment for its own keys: the key named by a client's id (a cursor, a
per-connection state) is removed when that client leaves the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import msgspec

from tidings.errors import ReplyError
from tidings.protocol.centrifuge.messages import ClientInfo, raw
from tidings.store.base import StoreWriteError
from tidings.store.keyed import WriteCondition, WriteSuppressed

if TYPE_CHECKING:
    from tidings.core.channels import Channel
    from tidings.core.client import Client
    from tidings.core.maps import MapChannels

log = logging.getLogger(__name__)

#: Seconds between passes that refresh the entries of this node's subscribers.
REFRESH_TICK = 1.0


class MapPresence:
    """The map presence entries of one node's subscribers (see the module docstring)."""

    def __init__(self, maps: MapChannels) -> None:
        self.maps = maps
        #: (client id, channel) -> (client, channel, its entry's info, next refresh time)
        self._members: dict[tuple[str, str], tuple[Client, Channel, bytes, float]] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._removals: set[asyncio.Task[None]] = set()

    @staticmethod
    def tracked(channel: Channel) -> bool:
        opts = channel.options
        return bool(
            opts.map_clients_presence_channel_prefix
            or opts.map_users_presence_channel_prefix
            or opts.map_remove_client_on_unsubscribe
        )

    async def joined(self, client: Client, channel: Channel, chan_info: bytes) -> None:
        """`client` subscribed to `channel`: write its entries (never raises)."""
        info = ClientInfo(
            user=client.user, client=client.id, conn_info=raw(client.info), chan_info=raw(chan_info)
        )
        encoded = msgspec.json.encode(info)
        member = (client.id, channel.name)
        self._members[member] = (client, channel, encoded, 0.0)
        await self._write(client, channel, encoded)
        if member not in self._members:
            # It left while its entry was being written: remove what was written.
            self._members[member] = (client, channel, encoded, 0.0)
            self.left(client, channel)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _write(self, client: Client, channel: Channel, info: bytes) -> None:
        opts = channel.options
        writes = []
        if opts.map_clients_presence_channel_prefix:
            target = opts.map_clients_presence_channel_prefix + channel.name
            writes.append((target, client.id, info))
        if opts.map_users_presence_channel_prefix and client.user:
            writes.append((opts.map_users_presence_channel_prefix + channel.name, client.user, b""))
        for target, key, encoded in writes:
            condition = WriteCondition(key_mode="if_new", refresh_ttl=True, info=encoded)
            try:
                await self.maps.publish(target, key, b"", condition)
            except WriteSuppressed:
                pass  # already there: its TTL was refreshed
            except (ReplyError, StoreWriteError) as exc:
                log.warning("map presence of %s in %r not written: %s", client.id, target, exc)
            except Exception:  # a subscribe never fails for its presence entry
                log.exception("map presence of %s in %r not written", client.id, target)
        member = (client.id, channel.name)
        if member in self._members:
            due = time.monotonic() + self._period(channel)
            self._members[member] = (client, channel, info, due)

    def _period(self, channel: Channel) -> float:
        """A third of the shortest presence key TTL, so an entry never lapses while held."""
        ttls = []
        opts = channel.options
        for prefix in (
            opts.map_clients_presence_channel_prefix,
            opts.map_users_presence_channel_prefix,
        ):
            if prefix:
                with contextlib.suppress(ReplyError):
                    ttl = self.maps.channel(prefix + channel.name).options.map_key_ttl
                    if ttl > 0:
                        ttls.append(ttl)
        return max(REFRESH_TICK, min(ttls) / 3) if ttls else 60.0

    def left(self, client: Client, channel: Channel) -> None:
        """`client` is no longer subscribed to `channel`: remove its client entry."""
        if self._members.pop((client.id, channel.name), None) is None:
            return
        opts = channel.options
        targets = []
        if opts.map_clients_presence_channel_prefix:
            targets.append(opts.map_clients_presence_channel_prefix + channel.name)
        if opts.map_remove_client_on_unsubscribe:
            targets.append(channel.name)
        for target in targets:
            # In the background: an unsubscribe or a disconnect never waits for the store.
            task = asyncio.get_running_loop().create_task(self._remove(target, client.id))
            self._removals.add(task)
            task.add_done_callback(self._removals.discard)

    async def _remove(self, target: str, key: str) -> None:
        try:
            await self.maps.remove(target, key)
        except (ReplyError, StoreWriteError) as exc:
            log.warning("map presence of %s in %r not removed: %s", key, target, exc)
        except Exception:  # the key TTL removes it in the end
            log.exception("map presence of %s in %r not removed", key, target)

    async def _refresh_forever(self) -> None:
        while self._members:
            await asyncio.sleep(REFRESH_TICK)
            now = time.monotonic()
            for client, channel, info, due in list(self._members.values()):
                if client.closed or channel.name not in client.subscriptions:
                    self.left(client, channel)  # missed its leave: never refresh a ghost
                    continue
                if due > now:
                    continue
                try:
                    await self._write(client, channel, info)
                except Exception:  # one entry's failure never stops the others' refresh
                    log.exception("refreshing map presence of %s failed", client.id)

    async def close(self) -> None:
        for task in list(self._removals):
            with contextlib.suppress(Exception):
                await task
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
