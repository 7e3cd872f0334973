"""SqliteHistoryStore beyond the conformance suite: group commit, size cap, failures."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from msgspec import Raw

from tests.conftest import ServerProcess
from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import Position, StoreWriteError
from tidings.store.sqlite import SqliteHistoryStore

#: The smallest cap the store accepts: 16 pages of 4 KiB.
TINY = 65_536


def pub(n: int, size: int = 0) -> Publication:
    pad = "x" * size
    return Publication(data=Raw(f'{{"n":{n},"pad":"{pad}"}}'.encode()))


async def test_batch_policy_groups_concurrent_appends(tmp_path: Path) -> None:
    store = SqliteHistoryStore(tmp_path / "s.sqlite3", default_policy="batch")
    try:
        appends = 400
        positions = await asyncio.gather(
            *(store.append(f"c{n % 20}", pub(n), 1000, 3600) for n in range(appends))
        )
        commits = store.commits
        print(f"batch: {appends} concurrent appends in {commits} commits")
        assert 0 < commits < appends / 4
        per_channel: dict[str, list[int]] = {}
        for n, position in enumerate(positions):
            per_channel.setdefault(f"c{n % 20}", []).append(position.offset)
        assert all(offsets == list(range(1, 21)) for offsets in per_channel.values())
        pubs, top = await store.read("c0")
        assert [p.offset for p in pubs] == list(range(1, 21)) and top.offset == 20
    finally:
        await store.close()


@pytest.mark.parametrize("policy", ["always", "never"])
async def test_other_policies_also_group_what_is_queued(tmp_path: Path, policy: str) -> None:
    """Without a batch window, appends that queue up during a commit still share the next."""
    store = SqliteHistoryStore(tmp_path / "s.sqlite3", default_policy=policy)
    try:
        await asyncio.gather(*(store.append("c", pub(n), 1000, 3600) for n in range(200)))
        assert 0 < store.commits <= 200
        assert (await store.position("c")).offset == 200
    finally:
        await store.close()


async def test_sequential_appends_commit_each(tmp_path: Path) -> None:
    """A publish is acknowledged only after its own commit: one at a time, one commit each."""
    store = SqliteHistoryStore(tmp_path / "s.sqlite3", default_policy="batch")
    try:
        for n in range(10):
            await store.append("c", pub(n), 1000, 3600)
        assert store.commits == 10
    finally:
        await store.close()


async def fill_until_full(store: SqliteHistoryStore, channel: str) -> tuple[int, StoreWriteError]:
    """Append 2 KiB publications until the store refuses one; the last good offset."""
    last = 0
    for n in range(1000):
        try:
            last = (await store.append(channel, pub(n, 2000), 10_000, 3600)).offset
        except StoreWriteError as exc:
            return last, exc
    raise AssertionError(f"{last} appends of 2 KiB fitted in a {TINY}-byte store")


async def test_max_bytes_refuses_appends_and_the_thread_survives(tmp_path: Path) -> None:
    store = SqliteHistoryStore(tmp_path / "s.sqlite3", max_bytes=TINY)
    try:
        last, error = await fill_until_full(store, "c")
        assert last > 0
        assert "full" in str(error)
        assert store._thread.is_alive()
        # The failed append left nothing behind: no publication, no offset taken.
        pubs, top = await store.read("c")
        assert [p.offset for p in pubs] == list(range(1, last + 1))
        assert top.offset == last and store.top("c") == top
        with pytest.raises(StoreWriteError):
            await store.append("c", pub(0, 2000), 10_000, 3600)
        # Acks and other reads still work on the full store's thread.
        assert (await store.position("other")).offset == 0
        # Room made, appends go on at the next offset in the same epoch.
        await store.remove("c")
        position = await store.append("c", pub(0, 2000), 10_000, 3600)
        assert position == Position(last + 1, top.epoch)
    finally:
        await store.close()


async def test_a_failed_batch_fails_only_its_own_appends(tmp_path: Path) -> None:
    """Concurrent appends in a full store: each either succeeds or raises, no gap, no hang."""
    store = SqliteHistoryStore(tmp_path / "s.sqlite3", max_bytes=TINY, default_policy="batch")
    try:
        results = await asyncio.wait_for(
            asyncio.gather(
                *(store.append("c", pub(n, 2000), 10_000, 3600) for n in range(100)),
                return_exceptions=True,
            ),
            10,
        )
        ok = [r.offset for r in results if isinstance(r, Position)]
        errors = [r for r in results if not isinstance(r, Position)]
        assert errors and all(isinstance(e, StoreWriteError) for e in errors)
        pubs, _ = await store.read("c")
        assert sorted(ok) == [p.offset for p in pubs] == list(range(1, len(ok) + 1))
    finally:
        await store.close()


async def test_corrupt_row_fails_the_read_not_the_thread(tmp_path: Path) -> None:
    """A row that does not decode must not end the writer thread (every call would hang)."""
    path = tmp_path / "s.sqlite3"
    store = SqliteHistoryStore(path)
    try:
        await store.append("c", pub(1), 100, 3600)
        with sqlite3.connect(path) as db:
            db.execute("UPDATE pubs SET data = x'00ff'")
        with pytest.raises(StoreWriteError, match="DecodeError"):
            await asyncio.wait_for(store.read("c"), 5)
        assert store._thread.is_alive()
        position = await asyncio.wait_for(store.append("c", pub(2), 100, 3600), 5)
        assert position.offset == 2
    finally:
        await store.close()


# --- through the server API ------------------------------------------------------------


async def api(server: ServerProcess, method: str, payload: dict[str, Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.api_url}/{method}", json=payload, headers={"X-API-Key": server.api_key}
        ) as resp,
    ):
        body: dict[str, Any] = await resp.json()
        return body


async def test_api_publish_fails_when_the_store_is_full(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"durable_max_bytes": TINY, "personal_channel_fsync": "always"})
    ok: list[int] = []
    errors: list[dict[str, Any]] = []
    for n in range(200):
        body = await api(server, "publish", {"channel": "#u1", "data": {"n": n, "p": "x" * 2000}})
        if "result" in body:
            assert not errors, f"publish {n} succeeded after the store was full: {body}"
            ok.append(body["result"]["offset"])
        else:
            errors.append(body["error"])
            if len(errors) >= 3:
                break
    assert ok == list(range(1, len(ok) + 1))
    assert len(errors) == 3
    for error in errors:
        assert error["code"] == 100
        assert "durable store write failed" in error["message"]
        assert "full" in error["message"]
    # Nothing failed is stored; the store still answers; memory channels still publish.
    history = await api(server, "history", {"channel": "#u1", "limit": -1})
    assert [p["offset"] for p in history["result"]["publications"]] == ok
    assert history["result"]["offset"] == len(ok)
    assert "result" in await api(server, "publish", {"channel": "plain", "data": {}})
    assert server.proc.poll() is None


async def test_loop_side_tops_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tidings.store.sqlite.MAX_CACHED_TOPS", 10)
    store = SqliteHistoryStore(tmp_path / "s.sqlite3", default_policy="never")
    try:
        for n in range(30):
            await store.append(f"c{n}", pub(n), 10, 3600)
        assert len(store._tops) == 10
        assert store.top("c29") is not None and store.top("c0") is None
        assert await store.num_streams() == 30, "the cache bound forgets nothing stored"
        assert (await store.position("c0")).offset == 1
    finally:
        await store.close()


async def test_the_epoch_of_a_never_published_channel_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SqliteHistoryStore(path)
    try:
        seen = await store.position("c")
    finally:
        await store.close()
    store = SqliteHistoryStore(path)
    try:
        assert await store.position("c") == seen
        assert (await store.append("c", pub(1), 10, 3600)).epoch == seen.epoch
    finally:
        await store.close()
