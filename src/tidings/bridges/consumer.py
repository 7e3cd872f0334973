"""Consumes one topic/channel from NSQ daemons found by address or through lookupd.

One `NsqConnection` per daemon, each kept up (reconnect with backoff); the
daemons are the configured `nsqd_tcp_addresses` plus those lookupd lists for
the topic (polled). Messages go to a per-connection worker that awaits the
handler and then sends FIN, or REQ with the delay the handler asks for:
nothing is FIN'd before the handler returned. RDY is `max_in_flight` split
over the connections (at least 1 each), so at most about `max_in_flight`
messages are held at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from tidings.bridges.connection import ConnectionLost, NsqCommandError, NsqConnection
from tidings.protocol.nsq import MessageFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Requeue:
    """The handler's answer to put a message back, to come again after `delay_ms`."""

    delay_ms: int


#: What a handler returns: None to FIN the message, a Requeue to REQ it.
Outcome = Requeue | None
#: Called with the daemon's address and the message.
Handler = Callable[[str, MessageFrame], Awaitable[Outcome]]


class QueueConsumer:
    def __init__(
        self,
        topic: str,
        channel: str,
        handler: Handler,
        *,
        nsqd_tcp_addresses: list[str] | None = None,
        lookupd_http_addresses: list[str] | None = None,
        max_in_flight: int = 100,
        lookupd_poll_interval: float = 15.0,
        max_backoff: float = 5.0,
    ) -> None:
        self.topic = topic
        self.channel = channel
        self._handler = handler
        self._static = list(nsqd_tcp_addresses or [])
        self._lookupds = list(lookupd_http_addresses or [])
        self._max_in_flight = max(1, max_in_flight)
        self._poll_interval = lookupd_poll_interval
        self._max_backoff = max_backoff
        self._links: dict[str, asyncio.Task[None]] = {}
        self._poller: asyncio.Task[None] | None = None
        self.finished = 0
        self.requeued = 0

    def start(self) -> None:
        for address in self._static:
            self._link(address)
        if self._lookupds:
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(), name=f"nsq-lookup-{self.topic}"
            )

    async def stop(self) -> None:
        tasks = [*self._links.values(), *([self._poller] if self._poller else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._links.clear()

    def _link(self, address: str) -> None:
        if address not in self._links:
            self._links[address] = asyncio.get_running_loop().create_task(
                self._keep(address), name=f"nsq-consume-{address}"
            )

    def _rdy(self) -> int:
        return max(1, self._max_in_flight // max(1, len(self._links)))

    async def _keep(self, address: str) -> None:
        backoff = 0.1
        while True:
            try:
                await self._consume(address)
                backoff = 0.1
            except (OSError, TimeoutError, ConnectionLost, NsqCommandError) as exc:
                log.warning("queue consumer %s %s/%s: %s", address, self.topic, self.channel, exc)
            except Exception:  # e.g. a daemon answering garbage: retried, never fatal
                log.exception("queue consumer %s %s/%s", address, self.topic, self.channel)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    async def _consume(self, address: str) -> None:
        inbox: asyncio.Queue[MessageFrame] = asyncio.Queue()
        connection = NsqConnection(address, inbox.put_nowait)
        worker: asyncio.Task[None] | None = None
        try:
            await connection.open()
            await connection.request(f"SUB {self.topic} {self.channel}".encode())
            rdy = self._rdy()
            connection.send(f"RDY {rdy}".encode())
            worker = asyncio.get_running_loop().create_task(self._work(connection, inbox))
            await connection.closed.wait()
        finally:
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await connection.close()

    async def _work(self, connection: NsqConnection, inbox: asyncio.Queue[MessageFrame]) -> None:
        while True:
            message = await inbox.get()
            try:
                outcome = await self._handler(connection.address, message)
            except asyncio.CancelledError:
                raise
            except Exception:  # a handler's bug must not stop consumption: requeue
                log.exception("queue consumer %s: handler failed", self.topic)
                outcome = Requeue(1000)
            msg_id = message.message_id
            with contextlib.suppress(ConnectionLost):
                if outcome is None:
                    connection.send(b"FIN " + msg_id)
                    self.finished += 1
                else:
                    connection.send(b"REQ " + msg_id + b" %d" % outcome.delay_ms)
                    self.requeued += 1

    async def _poll(self) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                for lookupd in self._lookupds:
                    for address in await self._lookup(session, lookupd):
                        self._link(address)
                await asyncio.sleep(self._poll_interval)

    async def _lookup(self, session: aiohttp.ClientSession, lookupd: str) -> list[str]:
        url = lookupd if "://" in lookupd else f"http://{lookupd}"
        try:
            async with session.get(f"{url}/lookup", params={"topic": self.topic}) as response:
                if response.status != 200:
                    return []
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("queue consumer: lookupd %s: %s", lookupd, exc)
            return []
        producers = body.get("producers") or [] if isinstance(body, dict) else []
        addresses = []
        for producer in producers:
            if isinstance(producer, dict):
                host = producer.get("broadcast_address") or producer.get("hostname")
                port = producer.get("tcp_port")
                if isinstance(host, str) and isinstance(port, int):
                    addresses.append(f"{host}:{port}")
        return addresses
