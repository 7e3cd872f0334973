"""Publishes to one NSQ daemon over a kept-up connection, with a bounded number waiting.

`publish()` sends PUB and returns once the daemon answered OK (for `tidings
queue` that is once the message is on disk, or on the replica). At most
`max_pending` publishes wait at a time; one more, or any while the
connection is down, fails at once with `QueueUnavailable`: the caller gets
a clear error instead of an unbounded queue. The connection is re-opened in
the background with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tidings.bridges.connection import ConnectionLost, NsqCommandError, NsqConnection

log = logging.getLogger(__name__)


class QueueUnavailable(Exception):
    """The queue cannot take a message now (down, too many waiting, or it refused)."""


class QueueProducer:
    def __init__(
        self,
        address: str,
        *,
        max_pending: int = 1000,
        timeout: float = 5.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.address = address
        self._max_pending = max_pending
        self._timeout = timeout
        self._max_backoff = max_backoff
        self._connection: NsqConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.pending = 0
        self.published = 0
        self.refused = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._keep(), name="nsq-producer")

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connection is not None:
            await self._connection.close()

    async def publish(self, topic: str, body: bytes) -> None:
        connection = self._connection
        if connection is None or connection.closed.is_set():
            self.refused += 1
            raise QueueUnavailable(f"queue {self.address} is not connected")
        if self.pending >= self._max_pending:
            self.refused += 1
            raise QueueUnavailable(
                f"{self.pending} publishes already wait for queue {self.address}"
            )
        self.pending += 1
        try:
            await connection.request(b"PUB " + topic.encode(), body)
        except (ConnectionLost, TimeoutError, NsqCommandError, OSError) as exc:
            self.refused += 1
            raise QueueUnavailable(f"queue {self.address}: {exc or type(exc).__name__}") from None
        finally:
            self.pending -= 1
        self.published += 1

    async def _keep(self) -> None:
        backoff = 0.1
        while True:
            connection = NsqConnection(self.address, timeout=self._timeout)
            try:
                await connection.open()
                self._connection = connection
                self._connected.set()
                backoff = 0.1
                await connection.closed.wait()
            except (OSError, TimeoutError, ConnectionLost, NsqCommandError) as exc:
                log.warning("queue producer %s: %s", self.address, exc)
            except Exception:  # e.g. a daemon answering garbage: retried, never fatal
                log.exception("queue producer %s", self.address)
            finally:
                self._connected.clear()
                await connection.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)
