"""The fsync policy: group commit merges concurrent appends into one round."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tidings.queue.committer import Committer
from tidings.queue.log import FileLog


async def test_batch_groups_concurrent_commits(tmp_path: Path) -> None:
    log = FileLog(tmp_path / "log")
    committer = Committer("batch")
    log.append([b"first"])
    await committer.commit(log)
    rounds = committer.rounds

    async def one(n: int) -> None:
        log.append([b"%d" % n])
        await committer.commit(log)

    await asyncio.gather(*(one(n) for n in range(50)))
    assert committer.rounds - rounds <= 3  # not 50


async def test_always_syncs_each_append(tmp_path: Path) -> None:
    log = FileLog(tmp_path / "log")
    committer = Committer("always")
    for n in range(3):
        log.append([b"%d" % n])
        await committer.commit(log)
    assert committer.rounds >= 3


async def test_never_does_not_sync(tmp_path: Path) -> None:
    log = FileLog(tmp_path / "log")
    committer = Committer("never")
    log.append([b"x"])
    await committer.commit(log)
    assert committer.rounds == 0
    assert log.sync_job() is not None  # still dirty


def test_unknown_policy() -> None:
    with pytest.raises(ValueError):
        Committer("sometimes")
