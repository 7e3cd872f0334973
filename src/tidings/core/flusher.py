"""Writes every connection's outbox once per event-loop turn.

Publishing marks clients as having output; one callback per loop turn then
flushes all of them, so a connection that receives many messages in one turn
gets them coalesced into a single frame, and a fan-out to N clients costs one
scheduled callback instead of N. A client whose write raises is dropped
(`Client.fail`, 3009); the others of the same flush are written all the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tidings.core.client import Client


log = logging.getLogger(__name__)


class Flusher:
    __slots__ = ("_before", "_loop", "_pending", "_scheduled", "flushes")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, before: Callable[[], None] | None = None
    ) -> None:
        self._loop = loop
        #: Runs first at each flush (the node's per-channel publication batches).
        self._before = before
        self._pending: list[Client] = []
        self._scheduled = False
        self.flushes = 0

    def schedule(self) -> None:
        """Make sure a flush runs at the end of this loop turn."""
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def mark(self, client: Client) -> None:
        """`client` has new output; it is written at the end of this loop turn."""
        self._pending.append(client)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        # Whatever fails, the flag is reset and every marked client is written:
        # a flag left set would stop all output of the node for good.
        try:
            if self._before is not None:
                self._before()  # may mark more clients: they join this same flush
        except Exception:
            log.exception("publication batches failed")
        finally:
            pending = self._pending
            self._pending = []
            self._scheduled = False
            self.flushes += 1
            for client in pending:
                try:
                    client.flush()
                except Exception as exc:
                    client.fail(f"write failed: {exc!r}")
