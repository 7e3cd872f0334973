"""QueueInbound's rule for each kind of message, with an in-process Node and real nsqd.

Valid envelopes are published (then FIN: the handler returns None); bad ones go
to `<topic>.dead` on the nsqd that delivered them; temporary failures are
requeued with a growing delay; a channel with history gets an idempotency key.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.bridges.conftest import topic_count
from tests.core.conftest import make_settings
from tests.peers.nsq_processes import NsqProcess
from tidings.bridges.consumer import Requeue
from tidings.bridges.inbound import MAX_REQUEUE_DELAY_MS, QueueInbound
from tidings.core.node import Node
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode
from tidings.protocol.nsq import MessageFrame
from tidings.settings import QueueConsumeOptions

HISTORY = {"history_size": 10, "history_ttl": 300}


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    created = Node(make_settings(namespaces={"news": {}, "feed": HISTORY}))
    yield created
    await created.stop()


def message(body: Any, attempts: int = 1, number: int = 1) -> MessageFrame:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return MessageFrame(0, attempts, b"%016x" % number, raw)


def inbound(node: Node, nsqd: NsqProcess) -> QueueInbound:
    options = QueueConsumeOptions(topic="push", nsqd_tcp_addresses=[nsqd.tcp_address])
    return QueueInbound(node, options)


async def test_valid_envelope_is_published_and_finished(node: Node, nsqd: NsqProcess) -> None:
    bridge = inbound(node, nsqd)
    assert (
        await bridge.handle(nsqd.tcp_address, message({"channel": "feed:a", "data": [1]})) is None
    )
    pubs, top = await node.history.read("feed:a")
    assert [bytes(p.data) for p in pubs] == [b"[1]"] and top.offset == 1
    # delivered again by the queue (same id): the idempotency key keeps it single
    assert (
        await bridge.handle(nsqd.tcp_address, message({"channel": "feed:a", "data": [1]})) is None
    )
    assert (await node.history.position("feed:a")).offset == 1
    # another message id is another publication
    second = message({"channel": "feed:a", "data": [1]}, number=2)
    assert await bridge.handle(nsqd.tcp_address, second) is None
    assert (await node.history.position("feed:a")).offset == 2
    assert bridge.published == 3


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        {"data": 1},
        {"channel": 5, "data": 1},
        {"channel": "news:a"},
        {"channel": "news:a", "data": None},
        {"channel": "nowhere:a", "data": 1},
        {"channel": "", "data": 1},
    ],
)
async def test_bad_message_goes_to_the_dead_letter_topic(
    node: Node, nsqd: NsqProcess, body: Any
) -> None:
    bridge = inbound(node, nsqd)
    try:
        assert await bridge.handle(nsqd.tcp_address, message(body)) is None
        assert topic_count(nsqd, "push.dead") == 1
        assert bridge.dead == 1 and bridge.published == 0
    finally:
        await bridge.stop()


async def test_dead_letter_publish_failing_means_requeue(node: Node) -> None:
    options = QueueConsumeOptions(topic="push", nsqd_tcp_addresses=["127.0.0.1:1"])
    bridge = QueueInbound(node, options)
    try:
        outcome = await bridge.handle("127.0.0.1:1", message(b"bad"))
        assert outcome == Requeue(1000)
    finally:
        await bridge.stop()


async def test_temporary_failure_requeues_with_growing_delay(
    node: Node, nsqd: NsqProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise ReplyError(ErrorCode.INTERNAL, "store cannot write")

    monkeypatch.setattr(node, "publish", failing)
    bridge = inbound(node, nsqd)
    envelope = {"channel": "feed:a", "data": 1}
    assert await bridge.handle(nsqd.tcp_address, message(envelope, attempts=1)) == Requeue(1000)
    assert await bridge.handle(nsqd.tcp_address, message(envelope, attempts=3)) == Requeue(3000)
    late = await bridge.handle(nsqd.tcp_address, message(envelope, attempts=500))
    assert late == Requeue(MAX_REQUEUE_DELAY_MS)
    assert topic_count(nsqd, "push.dead") == 0
