"""This node among the others: heartbeats, the live node table, commands between nodes.

Per-user operations of the API (`disconnect`, `unsubscribe`, `subscribe`,
`refresh`) act on this node's connections and are sent, over the broker's
control channel, to every other node the user register says holds one.
`broadcast_all` is split into one share per live node: each node sends to
its own users, paced, and reports its progress in its heartbeats. With the
memory engine there are no other nodes and all of this stays local.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import Raw

from tidings import __version__
from tidings.core.channel_survey import ChannelSurvey
from tidings.core.control import (
    BroadcastShare,
    ChannelsAnswer,
    ChannelsQuery,
    Command,
    DisconnectUser,
    EmulationAnswer,
    EmulationForward,
    Heartbeat,
    RefreshUser,
    SubscribeUser,
    UnsubscribeUser,
    decode_command,
    encode_command,
)
from tidings.core.loop_task import LoopTask
from tidings.core.nodes import NodeTable
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import Disconnect, ErrorCode
from tidings.register.base import UserConnection
from tidings.store.base import Position, StoreWriteError

if TYPE_CHECKING:
    from tidings.core.client import Client
    from tidings.core.emulation_relay import ControlRelay
    from tidings.core.node import Node

log = logging.getLogger(__name__)


def _unavailable(exc: StoreWriteError) -> ReplyError:
    return ReplyError(ErrorCode.INTERNAL, str(exc))


class Peers:
    """Heartbeats out and in, and the cluster-wide side of per-user operations."""

    def __init__(self, node: Node) -> None:
        self.node = node
        settings = node.settings
        self.interval = settings.node_heartbeat_interval
        self.nodes = NodeTable(
            settings.node_heartbeat_timeout, on_gone=self._node_gone, on_new=self._node_new
        )
        #: Addresses this node serves (set by the server once its sockets are bound).
        self.addresses: list[str] = []
        self.survey = ChannelSurvey(
            node.uid,
            node.broker.publish_control,
            node.hub.channels,
            # two trips through the engine and a turn of the other node's loop
            timeout=max(1.0, 3 * settings.redis_command_timeout),
        )
        self._task = LoopTask(self._beat, "heartbeats")
        self._background: set[asyncio.Task[None]] = set()
        #: Takes emulation requests relayed between nodes (set by the server).
        self.emulation: ControlRelay | None = None

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()
        if self._background:
            # Let register removals of the clients just disconnected reach the engine.
            await asyncio.wait(list(self._background), timeout=1.0)
        for task in list(self._background):
            task.cancel()

    def spawn(self, work: Awaitable[Any], what: str) -> None:
        """Run `work` in the background; a failure is logged, never raised into shared code."""

        async def run() -> None:
            try:
                await work
            except (StoreWriteError, ReplyError) as exc:
                log.warning("%s failed: %s", what, exc)
            except Exception:
                log.exception("%s failed", what)

        def done(task: asyncio.Task[None]) -> None:
            self._background.discard(task)
            if task.cancelled() and isinstance(work, Coroutine):
                work.close()  # cancelled before it ran: not an "never awaited" warning

        task = asyncio.get_running_loop().create_task(run(), name=what)
        self._background.add(task)
        task.add_done_callback(done)

    async def _beat(self) -> None:
        # Presence and register entries are refreshed by their own stores (every
        # entry_ttl / 3 once they hold one): not here too, which did it twice, and held
        # the next heartbeat back while thousands of entries were written (other nodes
        # then took this one for gone).
        node = self.node
        while True:
            try:
                await node.broker.publish_control(encode_command(self.heartbeat()))
            except StoreWriteError as exc:
                log.warning("heartbeat: %s", exc)
            except Exception:
                log.exception("heartbeat failed")
            self.nodes.expire()
            await asyncio.sleep(self.interval)

    def _node_gone(self, uid: str) -> None:
        # Its clients stop counting in presence and the register now, not after entry_ttl.
        log.info("node %s is gone (no heartbeat for %g s)", uid, self.nodes.timeout)
        self.node.presence.node_gone(uid)
        self.node.register.node_gone(uid)

    def _node_new(self, uid: str) -> None:
        self.node.presence.node_back(uid)
        self.node.register.node_back(uid)

    def heartbeat(self) -> Heartbeat:
        node, stats = self.node, self.node.stats()
        return Heartbeat(
            uid=node.uid,
            name=node.name,
            version=__version__,
            started_at=node.started_at,
            num_clients=stats["num_clients"],
            num_users=stats["num_users"],
            num_channels=stats["num_channels"],
            num_subs=stats["num_subs"],
            addresses=self.addresses,
            broadcasts={k: dict(v) for k, v in node.broadcasts.progress.items()},
        )

    # --- commands from other nodes -----------------------------------------------------

    def handle(self, data: bytes) -> None:
        try:
            command = decode_command(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("undecodable control message dropped: %s", exc)
            return
        self.apply(command)

    def apply(self, command: Command) -> None:
        node = self.node
        match command:
            case Heartbeat():
                if command.uid != node.uid:
                    self.nodes.update(command)
            case DisconnectUser():
                disconnect = Disconnect(command.code, command.reason)
                node.user_connections.disconnect_user(
                    command.user,
                    disconnect,
                    client_id=command.client,
                    whitelist=frozenset(command.whitelist),
                    session=command.session,
                )
            case UnsubscribeUser():
                self.spawn(
                    node.user_connections.unsubscribe_user(
                        command.user,
                        command.channel,
                        client_id=command.client,
                        session=command.session,
                    ),
                    "unsubscribe from another node",
                )
            case SubscribeUser():
                since = None
                if command.since_offset >= 0:
                    since = Position(command.since_offset, command.since_epoch)
                self.spawn(
                    node.user_connections.subscribe_user(
                        command.user,
                        command.channel,
                        client_id=command.client,
                        info=command.info,
                        data=command.data,
                        since=since,
                        session=command.session,
                    ),
                    "subscribe from another node",
                )
            case RefreshUser():
                node.user_connections.refresh_user(
                    command.user,
                    client_id=command.client,
                    expired=command.expired,
                    expire_at=command.expire_at,
                    session=command.session,
                )
            case BroadcastShare():
                self._run_share(command)
            case EmulationForward():
                if self.emulation is not None:
                    self.emulation.on_forward(command)
            case EmulationAnswer():
                if self.emulation is not None:
                    self.emulation.on_answer(command)
            case ChannelsQuery():
                self.spawn(self.survey.answer(command), "channels answer")
            case ChannelsAnswer():
                self.survey.received(command)

    # --- per-user operations, cluster-wide -------------------------------------------------

    async def _elsewhere(self, user: str, client_id: str = "") -> list[str]:
        """The other nodes holding a connection of `user` (or of that one connection)."""
        try:
            connections = await self.node.register.connections(user)
        except StoreWriteError as exc:
            raise _unavailable(exc) from None
        nodes = {
            c.node
            for c in connections
            if c.node != self.node.uid and (not client_id or c.client == client_id)
        }
        return sorted(nodes)

    async def _send(self, command: Command, nodes: list[str]) -> None:
        data = encode_command(command)
        try:
            for node_id in nodes:
                await self.node.broker.publish_control(data, node_id)
        except StoreWriteError as exc:
            raise _unavailable(exc) from None

    async def disconnect_user(
        self,
        user: str,
        disconnect: Disconnect,
        *,
        client_id: str = "",
        whitelist: frozenset[str] = frozenset(),
        session: str = "",
    ) -> None:
        self.node.user_connections.disconnect_user(
            user, disconnect, client_id=client_id, whitelist=whitelist, session=session
        )
        command = DisconnectUser(
            user=user,
            code=disconnect.code,
            reason=disconnect.reason,
            client=client_id,
            whitelist=sorted(whitelist),
            session=session,
        )
        await self._send(command, await self._elsewhere(user, client_id))

    async def unsubscribe_user(
        self, user: str, channel: str, *, client_id: str = "", session: str = ""
    ) -> None:
        await self.node.user_connections.unsubscribe_user(
            user, channel, client_id=client_id, session=session
        )
        command = UnsubscribeUser(user=user, channel=channel, client=client_id, session=session)
        await self._send(command, await self._elsewhere(user, client_id))

    async def subscribe_user(
        self,
        user: str,
        channel: str,
        *,
        client_id: str = "",
        info: bytes = b"",
        data: bytes = b"",
        since: Position | None = None,
        session: str = "",
    ) -> None:
        await self.node.user_connections.subscribe_user(
            user, channel, client_id=client_id, info=info, data=data, since=since, session=session
        )
        command = SubscribeUser(
            user=user,
            channel=channel,
            client=client_id,
            info=info,
            data=data,
            since_offset=since.offset if since is not None else -1,
            since_epoch=since.epoch if since is not None else "",
            session=session,
        )
        await self._send(command, await self._elsewhere(user, client_id))

    async def refresh_user(
        self,
        user: str,
        *,
        client_id: str = "",
        expired: bool = False,
        expire_at: int = 0,
        session: str = "",
    ) -> None:
        self.node.user_connections.refresh_user(
            user, client_id=client_id, expired=expired, expire_at=expire_at, session=session
        )
        command = RefreshUser(
            user=user, client=client_id, expired=expired, expire_at=expire_at, session=session
        )
        await self._send(command, await self._elsewhere(user, client_id))

    async def connections(self, user: str) -> list[UserConnection]:
        """Every connection of `user` on any node (this node's first, from its own index)."""
        local = {c.id for c in self.node.user_connections.user_clients(user)}
        try:
            remote = await self.node.register.connections(user)
        except StoreWriteError as exc:
            raise _unavailable(exc) from None
        return [c for c in remote if c.client not in local and c.node != self.node.uid]

    # --- registering connections --------------------------------------------------------------

    def connected(self, client: Client) -> None:
        if client.user:
            connection = UserConnection(client.user, client.id, self.node.uid, client.info)
            self.spawn(self.node.register.add(connection), "register add")

    def disconnected(self, client: Client) -> None:
        if client.user:
            self.spawn(self.node.register.remove(client.user, client.id), "register remove")

    # --- broadcast_all ---------------------------------------------------------------------------

    async def broadcast_all(
        self, data: Raw, rate: float, *, tags: dict[str, str] | None = None
    ) -> tuple[str, int]:
        """One share per live node (each paces `rate / nodes`); returns the task id and users."""
        others = self.nodes.live()
        share = BroadcastShare(
            task=uuid.uuid4().hex[:12],
            data=bytes(data),
            rate=rate / (len(others) + 1),
            tags=dict(tags or {}),
        )
        if others:
            await self._send(share, [hb.uid for hb in others])
        self._run_share(share)
        return share.task, self.node.hub.num_users + sum(hb.num_users for hb in others)

    def _run_share(self, share: BroadcastShare) -> None:
        node = self.node
        users = sorted({c.user for c in node.hub.clients() if c.user})
        data, tags = Raw(share.data), share.tags or None
        clustered = node.settings.engine != "memory"

        async def send(user: str) -> object:
            if clustered and not await self._owns(user):
                return None  # another node holding this user sends it (once per user)
            return await node.publish(node.personal_channel(user), data, tags=tags)

        node.broadcasts.start(users, send, share.rate, task_id=share.task)

    async def _owns(self, user: str) -> bool:
        """Whether this node is the one (lowest uid) that sends to `user` in a broadcast."""
        try:
            holders = {c.node for c in await self.node.register.connections(user)}
        except StoreWriteError as exc:
            raise _unavailable(exc) from None
        return not holders or min(holders | {self.node.uid}) == self.node.uid

    async def channels(self, pattern: str = "") -> dict[str, int]:
        """Channel -> subscribers on every live node (see `tidings.core.channel_survey`)."""
        try:
            return await self.survey.channels(pattern, [hb.uid for hb in self.nodes.live()])
        except StoreWriteError as exc:
            raise _unavailable(exc) from None

    def info(self) -> list[dict[str, Any]]:
        """The other live nodes as the `info` API lists them."""
        out = []
        for hb in self.nodes.live():
            items = {
                f"broadcast_all.{task}.{key}": value
                for task, progress in hb.broadcasts.items()
                for key, value in progress.items()
            }
            out.append(
                {
                    "uid": hb.uid,
                    "name": hb.name,
                    "version": hb.version,
                    "num_clients": hb.num_clients,
                    "num_users": hb.num_users,
                    "num_channels": hb.num_channels,
                    "num_subs": hb.num_subs,
                    "uptime": int(time.time() - hb.started_at),
                    "addresses": hb.addresses,
                    "metrics": {"interval": 0.0, "items": items},
                }
            )
        return out
