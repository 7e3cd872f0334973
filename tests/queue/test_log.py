"""One conformance suite for every MessageLog, plus FileLog's crash recovery."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.queue.log import FileLog, MemoryLog, MessageLog

Factory = Callable[[], MessageLog]


@pytest.fixture(params=["memory", "file"])
def make_log(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    if request.param == "memory":
        return MemoryLog
    return lambda: FileLog(tmp_path / "log", segment_bytes=200)


def test_append_and_read(make_log: Factory) -> None:
    log = make_log()
    assert (log.first_seq, log.next_seq) == (0, 0)
    assert log.append([b"a", b"bb"]) == 1
    assert log.append([b"c"]) == 2
    assert log.read(0) == [(0, b"a"), (1, b"bb"), (2, b"c")]
    assert log.read(2) == [(2, b"c")]
    assert log.read(3) == []
    assert log.read(0, max_bytes=1) == [(0, b"a")]


def test_many_records_across_segments(make_log: Factory) -> None:
    log = make_log()
    payloads = [f"message {i}".encode() for i in range(300)]
    for i in range(0, 300, 7):
        log.append(payloads[i : i + 7])
    got: list[tuple[int, bytes]] = []
    seq = 0
    while batch := log.read(seq, 100):
        got += batch
        seq = batch[-1][0] + 1
    assert got == list(enumerate(payloads))
    assert log.read(150, 1) == [(150, payloads[150])]


def test_truncate_before(make_log: Factory) -> None:
    log = make_log()
    for i in range(100):
        log.append([b"x" * 20 + bytes([i])])
    size = log.size_bytes
    freed = log.truncate_before(60)
    assert freed > 0 and log.size_bytes == size - freed
    assert 0 < log.first_seq <= 60
    assert log.read(0)[0][0] == log.first_seq
    assert log.read(60)[0] == (60, b"x" * 20 + bytes([60]))
    log.truncate_before(100)
    assert log.next_seq == 100 and log.read(0) == []
    assert log.append([b"after"]) == 100


def test_append_at_skips_and_jumps(make_log: Factory) -> None:
    log = make_log()
    assert log.append_at(0, [b"a", b"b"]) == 2
    assert log.append_at(1, [b"b", b"c"]) == 3  # b already held
    assert log.append_at(10, [b"k"]) == 11  # a gap: older records deleted on the primary
    assert log.read(10) == [(10, b"k")]
    assert [seq for seq, _ in log.read(0)][-1] == 10  # older ones may be dropped (memory)


def test_file_log_reopens(tmp_path: Path) -> None:
    log = FileLog(tmp_path / "log", segment_bytes=100)
    for i in range(50):
        log.append([b"%d" % i])
    log.close()
    again = FileLog(tmp_path / "log", segment_bytes=100)
    assert again.next_seq == 50
    assert again.read(0, 10**6) == [(i, b"%d" % i) for i in range(50)]
    assert again.append([b"50"]) == 50


@pytest.mark.parametrize("cut", [1, 5, 17, 20])
def test_file_log_cuts_a_torn_tail(tmp_path: Path, cut: int) -> None:
    log = FileLog(tmp_path / "log")
    log.append([b"first", b"second"])
    log.close()
    segment = next((tmp_path / "log").glob("*.seg"))
    size = segment.stat().st_size
    with segment.open("r+b") as handle:
        handle.truncate(size - cut)
    again = FileLog(tmp_path / "log")
    assert again.read(0) == [(0, b"first")]
    assert again.append([b"third"]) == 1
    assert again.read(0) == [(0, b"first"), (1, b"third")]


def test_file_log_rejects_a_corrupt_record(tmp_path: Path) -> None:
    log = FileLog(tmp_path / "log")
    log.append([b"first", b"second"])
    log.close()
    segment = next((tmp_path / "log").glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert FileLog(tmp_path / "log").read(0) == [(0, b"first")]


def test_sync_job_runs(tmp_path: Path) -> None:
    log = FileLog(tmp_path / "log")
    assert log.sync_job() is not None  # the new segment's directory entry
    log.append([b"x"])
    job = log.sync_job()
    assert job is not None
    job()
    assert log.sync_job() is None
    fds_before = len(os.listdir("/proc/self/fd"))
    log.append([b"y"])
    job = log.sync_job()
    assert job is not None
    job()
    assert len(os.listdir("/proc/self/fd")) == fds_before


class LogModel:
    """What any MessageLog must hold: a plain list of (seq, payload)."""

    def __init__(self) -> None:
        self.records: list[tuple[int, bytes]] = []
        self.next = 0

    def append(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            self.records.append((self.next, payload))
            self.next += 1


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.lists(st.binary(min_size=1, max_size=40), max_size=5)),
            st.tuples(st.just("truncate"), st.integers(0, 60)),
            st.tuples(st.just("reopen"), st.just(0)),
        ),
        max_size=30,
    )
)
@settings(max_examples=60, deadline=None)
def test_file_log_matches_the_model(operations: list[tuple[str, object]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "log"
        log = FileLog(path, segment_bytes=120)
        model = LogModel()
        for name, argument in operations:
            if name == "append" and isinstance(argument, list) and argument:
                assert log.append(argument) == model.next + len(argument) - 1
                model.append(argument)
            elif name == "truncate" and isinstance(argument, int):
                log.truncate_before(argument)
            elif name == "reopen":
                log.close()
                log = FileLog(path, segment_bytes=120)
            assert log.next_seq == model.next
            # Truncation deletes whole segments: what is kept is a suffix of the model.
            kept = log.read(0, 10**9)
            assert kept == model.records[len(model.records) - len(kept) :]
            assert all(seq >= log.first_seq for seq, _ in kept)
        log.close()


def test_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from tidings.queue.log import LogWriteError

    log = FileLog(tmp_path / "log")
    log.append([b"kept"])
    real_pwrite = os.pwrite

    def half_then_full(fd: int, data: object, offset: int) -> int:
        view = memoryview(data)  # type: ignore[arg-type]
        if len(view) > 4:
            return real_pwrite(fd, view[:4], offset)  # a partial write, then ENOSPC
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", half_then_full)
    with pytest.raises(LogWriteError, match="No space"):
        log.append([b"lost" * 10])
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    assert log.next_seq == 1
    assert log.append([b"next"]) == 1
    log.close()
    assert FileLog(tmp_path / "log").read(0) == [(0, b"kept"), (1, b"next")]
