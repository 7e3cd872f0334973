"""Every PresenceStore implementation passes the shared conformance checks.

A new implementation is one more entry in IMPLEMENTATIONS.
"""

from __future__ import annotations

import pytest

from tidings.presence.memory import MemoryPresenceStore
from tidings.protocol.centrifuge.messages import ClientInfo
from tidings.testing import PRESENCE_STORE_CHECKS, check_presence_store
from tidings.testing.presence import PresenceStoreCheck, PresenceStoreFactory

IMPLEMENTATIONS: dict[str, PresenceStoreFactory] = {
    "memory": MemoryPresenceStore,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def factory(request: pytest.FixtureRequest) -> PresenceStoreFactory:
    return IMPLEMENTATIONS[request.param]


@pytest.mark.parametrize("check", PRESENCE_STORE_CHECKS, ids=lambda c: c.__name__)
async def test_check(factory: PresenceStoreFactory, check: PresenceStoreCheck) -> None:
    await check(factory)


async def test_whole_suite(factory: PresenceStoreFactory) -> None:
    await check_presence_store(factory)


# --- the suite itself must catch broken stores -------------------------------------


class CountsConnectionsAsUsers(MemoryPresenceStore):
    async def stats(self, channel: str) -> tuple[int, int]:
        clients = await self.get(channel)
        return len(clients), len(clients)


class SharesItsDict(MemoryPresenceStore):
    async def get(self, channel: str) -> dict[str, ClientInfo]:
        return self._channels.setdefault(channel, {})


class RemovesEverywhere(MemoryPresenceStore):
    async def remove(self, channel: str, client_id: str) -> None:
        for name in list(self._channels):
            await super().remove(name, client_id)


@pytest.mark.parametrize("broken", [CountsConnectionsAsUsers, SharesItsDict, RemovesEverywhere])
async def test_suite_rejects_broken_store(broken: type[MemoryPresenceStore]) -> None:
    with pytest.raises(AssertionError):
        await check_presence_store(broken)
