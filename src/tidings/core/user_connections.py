"""A user's connections on this node, acted on from the server API and other nodes.

Server-side subscribe, unsubscribe, disconnect and refresh of one user (or of
one of its connections: `client_id`, `session`). `Peers` sends the same to
every node of a cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tidings.core.auth import ttl_of
from tidings.core.client import Client
from tidings.core.emulation import session_of
from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.codes import Disconnect
from tidings.protocol.centrifuge.messages import Push, Refresh, Reply, Subscribe, raw
from tidings.store.base import Position

if TYPE_CHECKING:
    from tidings.core.node import Node


class UserConnections:
    """Server-side operations on the connections of one user on this node."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def user_clients(self, user: str, client_id: str = "", session: str = "") -> list[Client]:
        """The user's connections here, or only the one with `client_id` and/or `session`."""
        clients = self.node.hub.user_clients(user)
        if client_id:
            clients = [c for c in clients if c.id == client_id]
        if session:
            clients = [c for c in clients if session_of(c) == session]
        return clients

    async def subscribe_user(
        self,
        user: str,
        name: str,
        *,
        client_id: str = "",
        info: bytes = b"",
        data: bytes = b"",
        since: Position | None = None,
        session: str = "",
    ) -> None:
        """Subscribe the user's connections server-side (recovering from `since` if given)."""
        channel = self.node.rules.resolve(name)
        for client in self.user_clients(user, client_id, session):
            if name in client.subscriptions:
                continue
            result = await self.node.subscriptions.subscribe_client(
                client, channel, info=info, server_side=True, recover=since is not None, since=since
            )
            push = Subscribe(
                recoverable=result.recoverable,
                epoch=result.epoch,
                offset=result.offset,
                positioned=result.positioned,
                data=raw(data),
            )
            client.reply(Reply(push=Push(channel=name, subscribe=push)))
            # The subscribe push has no room for them: recovered publications follow it.
            for pub in result.publications or ():
                client.reply(Reply(push=Push(channel=name, pub=pub)))

    async def unsubscribe_user(
        self, user: str, name: str, *, client_id: str = "", session: str = ""
    ) -> None:
        self.node.rules.resolve(name)
        for client in self.user_clients(user, client_id, session):
            await self.node.subscriptions.unsubscribe_client(client, name, push=True)

    def disconnect_user(
        self,
        user: str,
        disconnect: Disconnect,
        *,
        client_id: str = "",
        whitelist: frozenset[str] = frozenset(),
        session: str = "",
    ) -> int:
        clients = self.user_clients(user, client_id, session)
        clients = [c for c in clients if c.id not in whitelist]
        for client in clients:
            client.disconnect(disconnect)
        return len(clients)

    def refresh_user(
        self,
        user: str,
        *,
        client_id: str = "",
        expired: bool = False,
        expire_at: int = 0,
        session: str = "",
    ) -> None:
        for client in self.user_clients(user, client_id, session):
            if expired:
                client.disconnect(codes.EXPIRED)
                continue
            client.set_expiry(expire_at)
            ttl = ttl_of(expire_at)
            client.reply(Reply(push=Push(refresh=Refresh(expires=bool(expire_at), ttl=ttl))))
