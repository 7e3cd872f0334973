"""Emulation requests forwarded between nodes over the broker's control channel.

An SDK on an emulated connection (HTTP-stream, SSE) posts its commands to
the emulation endpoint with the `session` and `node` of its stream; behind
a load balancer that POST may reach any node. `ControlRelay` is the
`EmulationRelay` of a cluster: the node that took the POST sends the
commands (`EmulationForward`) to the named node only, which hands them to
the session's stream and answers (`EmulationAnswer`) whether it held the
session. The POST is answered once that answer is back, so the SDK gets
the same 204 / 404 as from the node holding its stream.

The broker keeps the order of one node's control messages, so commands
relayed by one node reach the session in the order they were posted. A node
not heard from (no heartbeat within the timeout) is "unknown node" at once;
one that does not answer within `timeout` fails the request (503), and at
most `limit` requests wait for answers at a time (more fail at once).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING

from tidings.core.control import EmulationAnswer, EmulationForward, encode_command
from tidings.core.emulation import EmulationRelay, EmulationSessions, Outcome

if TYPE_CHECKING:
    from tidings.core.peers import Peers

#: Seconds a relayed request waits for the holding node's answer.
RELAY_TIMEOUT = 5.0
#: Relayed requests waiting for answers at most (each holds one HTTP request open).
MAX_WAITING = 4096


class RelayUnavailable(Exception):
    """The request could not be relayed (too many waiting, or no answer in time)."""


class ControlRelay(EmulationRelay):
    """Relays emulation requests through the control channel (see the module docstring)."""

    def __init__(
        self,
        peers: Peers,
        sessions: EmulationSessions,
        *,
        timeout: float = RELAY_TIMEOUT,
        limit: int = MAX_WAITING,
    ) -> None:
        self._peers = peers
        self._sessions = sessions
        self._timeout = timeout
        self._limit = limit
        self._numbers = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[bool]] = {}
        #: Requests forwarded to other nodes, and taken from them for local sessions.
        self.forwarded = 0
        self.received = 0

    async def relay(self, node: str, session: str, data: bytes) -> Outcome:
        if not self._peers.nodes.knows(node):
            return Outcome.UNKNOWN_NODE
        if len(self._waiting) >= self._limit:
            raise RelayUnavailable("too many emulation requests waiting for other nodes")
        number = next(self._numbers)
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[number] = answer
        try:
            forward = EmulationForward(
                sender=self._peers.node.uid, request=number, session=session, data=data
            )
            await self._peers.node.broker.publish_control(encode_command(forward), node)
            self.forwarded += 1
            try:
                delivered = await asyncio.wait_for(answer, self._timeout)
            except TimeoutError:
                raise RelayUnavailable(f"node {node} did not answer") from None
        finally:
            self._waiting.pop(number, None)
        return Outcome.DELIVERED if delivered else Outcome.UNKNOWN_SESSION

    def on_forward(self, forward: EmulationForward) -> None:
        """Commands from another node for a session here: deliver, then answer."""
        self.received += 1
        outcome = self._sessions.deliver(forward.session, forward.data)
        if outcome is not Outcome.DELIVERED:
            self._sessions.refused += 1
        answer = EmulationAnswer(request=forward.request, delivered=outcome is Outcome.DELIVERED)
        self._peers.spawn(
            self._peers.node.broker.publish_control(encode_command(answer), forward.sender),
            "emulation answer",
        )

    def on_answer(self, answer: EmulationAnswer) -> None:
        waiting = self._waiting.get(answer.request)
        if waiting is not None and not waiting.done():
            waiting.set_result(answer.delivered)
