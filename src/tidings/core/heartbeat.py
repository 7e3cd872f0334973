"""Server pings on a timing wheel: one timer for the node, not one per connection.

Each connection sits in one slot of a wheel that turns once per ping
interval. When a slot comes round its clients get a ping; `pong_lag` slots
later, any of them that has not answered is disconnected with 3012.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

from tidings.core.loop_task import LoopTask
from tidings.protocol.centrifuge import codes

if TYPE_CHECKING:
    from tidings.core.client import Client

log = logging.getLogger(__name__)


class PingWheel:
    def __init__(self, interval: float, pong_timeout: float) -> None:
        self.tick = min(1.0, interval / 10)
        self.size = max(2, round(interval / self.tick))
        self.pong_lag = min(self.size - 1, max(1, math.ceil(pong_timeout / self.tick)))
        self._slots: list[set[Client]] = [set() for _ in range(self.size)]
        self._pos = 0
        self._task = LoopTask(self._run, "pings")

    def add(self, client: Client) -> None:
        slot = (self._pos - 1) % self.size  # first ping within one interval from now
        client.ping_slot = slot
        self._slots[slot].add(client)

    def remove(self, client: Client) -> None:
        if client.ping_slot >= 0:
            self._slots[client.ping_slot].discard(client)
            client.ping_slot = -1

    def advance(self) -> None:
        """Turn the wheel one slot: ping that slot, check the pongs of an earlier one."""
        self._pos = (self._pos + 1) % self.size
        for client in list(self._slots[(self._pos - self.pong_lag) % self.size]):
            if client.session.awaiting_pong:
                client.disconnect(codes.NO_PONG)
        # A copy: a failing client leaves its slot while the slot is walked.
        for client in list(self._slots[self._pos]):
            try:
                client.send_ping()
            except Exception as exc:
                client.fail(f"ping failed: {exc!r}")

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.tick
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            try:
                self.advance()
            except Exception:
                # The wheel serves every connection of the node: it must keep turning.
                log.exception("ping wheel")
