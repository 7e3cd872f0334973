"""The queue node in process: lookup registrations, retention, publish errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tidings.queue.node import PublishError, QueueNode
from tidings.queue.settings import QueueSettings


class RecordingLookup:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []

    def register(self, topic: str, channel: str | None) -> None:
        self.calls.append(("register", topic, channel))

    def unregister(self, topic: str, channel: str | None) -> None:
        self.calls.append(("unregister", topic, channel))


def make_node(tmp_path: Path, **settings: object) -> QueueNode:
    node = QueueNode(QueueSettings(data_path=tmp_path / "data", fsync="never", **settings))  # type: ignore[arg-type]
    node.open(asyncio.get_running_loop())
    return node


async def test_lookup_hook_hears_topics_and_channels(tmp_path: Path) -> None:
    lookup = RecordingLookup()
    node = make_node(tmp_path)
    node.lookup = lookup
    topic = node.topic("orders")
    node.channel(topic, "billing")
    node.delete_channel(topic, "billing")
    node.delete_topic("orders")
    assert lookup.calls == [
        ("register", "orders", None),
        ("register", "orders", "billing"),
        ("unregister", "orders", "billing"),
        ("unregister", "orders", None),
    ]
    node.close()


async def test_retention_refuses_then_frees_after_consumption(tmp_path: Path) -> None:
    node = make_node(tmp_path, retention_bytes=4000, segment_bytes=1000)
    topic = node.topic("t")
    channel = node.channel(topic, "c")
    published = 0
    with pytest.raises(PublishError, match="disk full"):
        for _ in range(100):
            node.publish("t", [b"x" * 100])
            published += 1
    assert 10 < published < 40
    channel.read_seq = topic.committed  # as if consumed and finished
    node.checkpoint()
    assert node.disk_bytes < 1500
    node.publish("t", [b"x" * 100])
    node.close()


async def test_ephemeral_topic_is_bounded_in_memory(tmp_path: Path) -> None:
    node = make_node(tmp_path, mem_queue_size=10)
    for _ in range(10):
        node.publish("e#ephemeral", [b"m"])
    with pytest.raises(PublishError, match="full"):
        node.publish("e#ephemeral", [b"m"])
    assert not list((tmp_path / "data" / "topics").iterdir())
    node.close()


async def test_topics_and_channels_reload(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    node.channel(node.topic("a.b"), "c-1")
    node.topic("..")  # valid NSQ name; must stay inside the data path
    node.close()
    again = make_node(tmp_path)
    assert sorted(again.topics) == ["..", "a.b"]
    assert list(again.topics["a.b"].channels) == ["c-1"]
    again.close()
