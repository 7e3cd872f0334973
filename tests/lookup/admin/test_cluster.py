"""The admin's view of the cluster: topics summed over nodes, rates, refused requests."""

from __future__ import annotations

import pytest

from tidings.lookup.admin.cluster import AdminRequestError, QueueCluster, RateMeter, _merge_topic
from tidings.testing.clock import FakeClock


def channel(name: str, **counters: int) -> dict[str, object]:
    return {"channel_name": name, "paused": counters.pop("paused", 0) == 1, **counters}


def test_topics_are_summed_over_nodes() -> None:
    topics: dict[str, dict[str, object]] = {}
    _merge_topic(
        topics,
        {
            "topic_name": "t",
            "depth": 2,
            "message_count": 10,
            "channels": [channel("b", depth=3, in_flight_count=1, client_count=2)],
        },
        "n1:4151",
    )
    _merge_topic(
        topics,
        {
            "topic_name": "t",
            "depth": 1,
            "message_count": 5,
            "paused": True,
            "channels": [channel("b", depth=4, paused=1), channel("a", deferred_count=7)],
        },
        "n2:4151",
    )
    topic = topics["t"]
    assert (topic["depth"], topic["message_count"], topic["paused"]) == (3, 15, True)
    assert topic["nodes"] == ["n1:4151", "n2:4151"]
    a, b = topic["channels"]  # type: ignore[misc]
    assert a["channel_name"] == "a" and a["deferred_count"] == 7
    assert (b["depth"], b["in_flight_count"], b["client_count"], b["paused"]) == (7, 1, 2, True)


def test_rates_are_messages_per_second_between_readings() -> None:
    clock = FakeClock()
    meter = RateMeter(clock)
    assert meter.rate(("t",), 100) == 0.0  # first reading
    clock.advance(0.5)
    assert meter.rate(("t",), 150) == 0.0  # too soon: the last rate stays
    clock.advance(1.5)
    assert meter.rate(("t",), 300) == 100.0  # 200 messages in 2 s
    clock.advance(1)
    assert meter.rate(("t",), 0) == 0.0  # a reset counter (emptied, restarted) is no rate


@pytest.mark.parametrize(
    ("kind", "action", "topic", "channel"),
    [
        ("topic", "explode", "t", None),
        ("queue", "pause", "t", None),
        ("topic", "pause", "bad/name", None),
        ("channel", "delete", "t", None),
        ("channel", "delete", "t", "c?x=1"),
    ],
)
async def test_bad_requests_reach_no_node(
    kind: str, action: str, topic: str, channel: str | None
) -> None:
    cluster = QueueCluster(["127.0.0.1:1"], [])  # never started: any call would fail
    with pytest.raises(AdminRequestError):
        await cluster.act(kind, action, topic, channel)
