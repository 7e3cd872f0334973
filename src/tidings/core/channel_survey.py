"""The cluster-wide answer of the `channels` API: every live node counts its own subscribers.

Which channels have subscribers, and how many, is known only to the nodes
that hold the connections (Redis knows that *some* node is subscribed, not
how many clients it serves). So the node asked sends a `ChannelsQuery`
over the broker's control channel to every other node; each answers with
its own counts (`ChannelsAnswer`, to the asking node only), and the asking
node adds them up with its own.

Bounded and never silently partial:

- it waits for the nodes its heartbeat table lists as live, no longer than
  `timeout` seconds; a node that does not answer by then makes the call
  fail with error 100 naming it (a node that just died leaves the table
  after the heartbeat timeout, and the call works again);
- an answer carries at most `MAX_ANSWER` channels; a node with more
  matching channels says so (`truncated`) and the call fails, asking for
  a narrower pattern, rather than returning a part as if it were all;
- at most `MAX_SURVEYS` run at once on a node; answers nobody waits for
  (late, unknown request, or from a node not asked) are dropped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tidings.core.control import ChannelsAnswer, ChannelsQuery, encode_command
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode

#: Most channels one node lists in an answer (about 2 MB of msgpack with long names).
MAX_ANSWER = 50_000
#: Most surveys waiting at once on one node.
MAX_SURVEYS = 32

Send = Callable[[bytes, str], Awaitable[None]]


@dataclass(slots=True)
class _Survey:
    waiting: set[str]
    counts: dict[str, int]
    done: asyncio.Future[None]
    truncated: list[str] = field(default_factory=list)


class ChannelSurvey:
    """Asks the other nodes for their channel counts and adds them up (see the module doc)."""

    def __init__(
        self,
        node_uid: str,
        send: Send,
        local: Callable[[str], dict[str, int]],  # pattern -> this node's counts (a new dict)
        timeout: float,
    ) -> None:
        self.node_uid = node_uid
        self._send = send
        self._local = local
        self.timeout = timeout
        self._surveys: dict[str, _Survey] = {}

    async def channels(self, pattern: str, nodes: list[str]) -> dict[str, int]:
        """Channel -> subscribers on this node and on every node of `nodes` (their uids)."""
        counts = self._local(pattern)
        others = {uid for uid in nodes if uid != self.node_uid}
        if not others:
            return counts
        if len(self._surveys) >= MAX_SURVEYS:
            raise ReplyError(ErrorCode.INTERNAL, "too many channels calls in progress")
        request = uuid.uuid4().hex
        survey = _Survey(set(others), counts, asyncio.get_running_loop().create_future())
        self._surveys[request] = survey
        try:
            query = encode_command(
                ChannelsQuery(request=request, sender=self.node_uid, pattern=pattern)
            )
            await self._send(query, "")
            try:
                await asyncio.wait_for(asyncio.shield(survey.done), self.timeout)
            except TimeoutError:
                silent = ", ".join(sorted(survey.waiting))
                raise ReplyError(
                    ErrorCode.INTERNAL,
                    f"channels: node(s) {silent} did not answer within {self.timeout:g} s",
                ) from None
        finally:
            del self._surveys[request]
        if survey.truncated:
            raise ReplyError(
                ErrorCode.INTERNAL,
                f"channels: more than {MAX_ANSWER} channels match on node(s) "
                f"{', '.join(sorted(survey.truncated))}; use a narrower pattern",
            )
        return survey.counts

    def answer_for(self, query: ChannelsQuery) -> ChannelsAnswer:
        """This node's answer to another node's query (at most MAX_ANSWER channels)."""
        found = self._local(query.pattern)
        truncated = len(found) > MAX_ANSWER
        if truncated:
            found = dict(list(found.items())[:MAX_ANSWER])
        return ChannelsAnswer(
            request=query.request, node=self.node_uid, channels=found, truncated=truncated
        )

    async def answer(self, query: ChannelsQuery) -> None:
        """Send this node's counts to the node that asked."""
        if query.sender != self.node_uid:
            await self._send(encode_command(self.answer_for(query)), query.sender)

    def received(self, answer: ChannelsAnswer) -> None:
        """Another node's answer: counted once, if someone waits for it."""
        survey = self._surveys.get(answer.request)
        if survey is None or answer.node not in survey.waiting:
            return
        survey.waiting.discard(answer.node)
        if answer.truncated:
            survey.truncated.append(answer.node)
        counts = survey.counts
        for name, n in answer.channels.items():
            counts[name] = counts.get(name, 0) + n
        if not survey.waiting and not survey.done.done():
            survey.done.set_result(None)
