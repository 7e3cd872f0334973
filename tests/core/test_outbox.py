"""The bounded outbox of one connection."""

from __future__ import annotations

from tidings.core.outbox import Outbox


def test_push_and_drain_in_order() -> None:
    box = Outbox(100)
    assert box.push(b"a") and box.push(b"bb") and box.push(b"ccc")
    assert len(box) == 3
    assert box.size == 6
    assert box.drain() == [b"a", b"bb", b"ccc"]
    assert len(box) == 0 and box.size == 0
    assert box.drain() == []


def test_refuses_what_would_exceed_the_limit() -> None:
    box = Outbox(10)
    assert box.push(b"12345")
    assert not box.push(b"123456")
    assert (len(box), box.size) == (1, 5), "a refused push must queue nothing"
    assert box.push(b"12345"), "exactly at the limit is allowed"
    assert box.size == 10
    assert not box.push(b"x")


def test_single_message_larger_than_limit_is_refused() -> None:
    box = Outbox(3)
    assert not box.push(b"1234")
    assert box.drain() == []


def test_drain_frees_room() -> None:
    box = Outbox(4)
    assert box.push(b"1234")
    assert not box.push(b"5")
    box.drain()
    assert box.push(b"5")
    assert box.drain() == [b"5"]


def test_drain_hands_over_the_list() -> None:
    box = Outbox(100)
    box.push(b"a")
    taken = box.drain()
    box.push(b"b")
    assert taken == [b"a"], "later pushes must not show up in an earlier drain"
