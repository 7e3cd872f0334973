"""Channel progress: every change survives a crash (no close), checkpoints included."""

from __future__ import annotations

from pathlib import Path

from tidings.queue.progress import ChannelProgress


def test_journal_survives_without_close(tmp_path: Path) -> None:
    progress = ChannelProgress(tmp_path, start=0)
    progress.delivered(0, 1)
    progress.delivered(1, 1)
    progress.finished(0)
    progress.deferred_until(1, 99_000)
    progress.delivered(2, 1)
    progress.delivered(2, 2)
    progress.flush()
    # no checkpoint, no close: as after kill -9
    again = ChannelProgress(tmp_path, start=0)
    assert 0 in again.acked
    assert again.deferred == {1: 99_000}
    assert again.attempts[2] == 2


def test_checkpoint_then_journal(tmp_path: Path) -> None:
    progress = ChannelProgress(tmp_path, start=0)
    for seq in range(10):
        progress.delivered(seq, 1)
        progress.finished(seq)
    progress.checkpoint(10)
    progress.delivered(10, 1)
    progress.finished(11)
    progress.paused = True
    progress.checkpoint(10)
    progress.finished(12)
    progress.flush()
    again = ChannelProgress(tmp_path, start=0)
    assert again.floor == 10
    assert {11, 12} <= again.acked
    assert again.attempts == {10: 1}
    assert again.paused
    assert len(list(tmp_path.glob("journal.*"))) == 1


def test_torn_journal_entry_is_ignored(tmp_path: Path) -> None:
    progress = ChannelProgress(tmp_path, start=0)
    progress.finished(3)
    progress.flush()
    journal = next(tmp_path.glob("journal.*"))
    with journal.open("ab") as handle:
        handle.write(b"F\x00\x00")
    assert ChannelProgress(tmp_path, start=0).acked == {3}


def test_memory_progress_has_no_files(tmp_path: Path) -> None:
    progress = ChannelProgress(None, start=5)
    progress.finished(5)
    progress.checkpoint(6)
    assert progress.floor == 6
    assert list(tmp_path.iterdir()) == []
