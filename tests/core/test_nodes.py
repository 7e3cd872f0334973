"""The live node table: heartbeats keep a node, silence removes it, memory is bounded."""

from __future__ import annotations

from tidings.core import nodes as nodes_module
from tidings.core.control import Heartbeat
from tidings.core.nodes import NodeTable


def beat(uid: str, name: str = "") -> Heartbeat:
    return Heartbeat(
        uid=uid,
        name=name or uid,
        version="1",
        started_at=0.0,
        num_clients=0,
        num_users=0,
        num_channels=0,
        num_subs=0,
    )


def test_a_silent_node_disappears_after_the_timeout() -> None:
    now = [100.0]
    table = NodeTable(timeout=5.0, clock=lambda: now[0])
    table.update(beat("a"))
    table.update(beat("b"))
    assert [hb.uid for hb in table.live()] == ["a", "b"]
    now[0] += 4.0
    table.update(beat("b"))  # b keeps talking, a does not
    now[0] += 2.0
    assert [hb.uid for hb in table.live()] == ["b"]
    now[0] += 6.0
    assert table.live() == []


def test_a_flood_of_forged_nodes_is_bounded(monkeypatch: object) -> None:
    setattr(nodes_module, "MAX_NODES", 10)  # noqa: B010 - module constant for the test
    try:
        table = NodeTable(timeout=60.0)
        for n in range(100):
            table.update(beat(f"n{n}"))
        assert len(table) == 10
        table.update(beat("n0"))  # a known node is still updated
        assert len(table) == 10
    finally:
        nodes_module.MAX_NODES = 10_000


def test_gone_and_new_nodes_are_reported_once() -> None:
    now = [100.0]
    events: list[tuple[str, str]] = []
    table = NodeTable(
        timeout=5.0,
        clock=lambda: now[0],
        on_gone=lambda uid: events.append(("gone", uid)),
        on_new=lambda uid: events.append(("new", uid)),
    )
    table.update(beat("a"))
    table.update(beat("a"))  # heard again: not new
    now[0] += 6.0
    assert table.live() == []
    assert table.expire() == []  # gone is reported once
    table.update(beat("a"))  # back after being gone: new again
    assert events == [("new", "a"), ("gone", "a"), ("new", "a")]
