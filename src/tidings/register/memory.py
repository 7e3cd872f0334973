"""The user register of a single node, in process memory."""

from __future__ import annotations

from tidings.register.base import UserConnection, UserRegister


class MemoryUserRegister(UserRegister):
    """user -> client id -> connection; connections leave only through `remove`."""

    def __init__(self) -> None:
        self._users: dict[str, dict[str, UserConnection]] = {}

    async def add(self, connection: UserConnection) -> None:
        self._users.setdefault(connection.user, {})[connection.client] = connection

    async def remove(self, user: str, client: str) -> None:
        clients = self._users.get(user)
        if clients is not None:
            clients.pop(client, None)
            if not clients:
                del self._users[user]

    async def connections(self, user: str) -> list[UserConnection]:
        return list(self._users.get(user, {}).values())
