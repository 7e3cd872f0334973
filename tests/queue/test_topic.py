"""Topic: commit gates visibility, the memory window, orphan retention, pause."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidings.queue import topic as topic_module
from tidings.queue.log import FileLog, MemoryLog
from tidings.queue.topic import Topic


def test_messages_are_visible_once_committed() -> None:
    topic = Topic("t", MemoryLog(), None)
    last, _ = topic.append([b"a", b"b"])
    assert last == 1 and topic.read(0, 1000) == []
    topic.commit(last + 1)
    assert [m.body for m in topic.read(0, 1000)] == [b"a", b"b"]


def test_reads_beyond_the_memory_window_come_from_the_log(tmp_path: Path) -> None:
    topic = Topic("t", FileLog(tmp_path / "log"), tmp_path, cache_size=4)
    for i in range(20):
        last, _ = topic.append([b"%d" % i])
        topic.commit(last + 1)
    assert len(topic._cache) <= 5
    assert [m.body for m in topic.read(0, 10**6)][:3] == [b"0", b"1", b"2"]
    assert topic.read(19, 10)[0].body == b"19"


def test_cache_is_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topic_module, "CACHE_BYTES", 1000)
    topic = Topic("t", MemoryLog(), None, cache_size=10**6)
    for _ in range(100):
        topic.append([b"x" * 100])
    assert topic._cache_bytes <= 1000
    assert len(topic._cache) <= 10


def test_without_channels_messages_wait_for_the_first_channel() -> None:
    topic = Topic("t", MemoryLog(), None)
    last, _ = topic.append([b"kept"])
    topic.commit(last + 1)
    assert topic.depth == 1
    assert topic.start_of_new_channel("c") == 0
    topic.empty()
    assert topic.depth == 0 and topic.start_of_new_channel("c") == 1


def test_pause_holds_new_messages_back() -> None:
    topic = Topic("t", MemoryLog(), None)
    last, _ = topic.append([b"before"])
    topic.commit(last + 1)
    topic.pause(True)
    last, _ = topic.append([b"during"])
    topic.commit(last + 1)
    assert topic.committed == 1
    topic.pause(False)
    assert topic.committed == 2


def test_replica_position_decides_where_a_channel_resumes() -> None:
    topic = Topic("t", MemoryLog(), None)
    topic.append_replicated(0, [b"a", b"b", b"c"])
    topic.meta.peer_floors = {"c": 2}
    assert topic.start_of_new_channel("c") == 2
    assert topic.retention_floor() == 0  # orphan_start: what the primary kept
