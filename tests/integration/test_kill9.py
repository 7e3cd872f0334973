"""The at-least-once promise under SIGKILL: a publish that returned success is never lost.

A `tidings serve` process with durable personal channels takes concurrent API
publishes to 100 users' inboxes (`#u0`..`#u99`) while every user is offline.
The test SIGKILLs it mid-stream, starts it again on the same data_dir, connects
all 100 users with centrifuge-python and checks that every publish that was
answered with success arrives (lost = 0), with the data it was published with
and in the epoch it was given. Publishes in flight at the kill may or may not
arrive; duplicates are allowed (at-least-once) and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from tests.conftest import ServerProcess
from tests.integration.durable_support import Inbox

USERS = 100
PUBLISHERS = 16
#: Kill after this long and at least MIN_SUCCESSES answered publishes (or at MAX_RUN).
RUN_FOR = 1.0
MIN_SUCCESSES = 300
MAX_RUN = 8.0
CONNECT_CONCURRENCY = 20


@dataclass
class Run:
    """What the publishers saw."""

    #: (user, seq) -> (offset, epoch) of every publish that returned success.
    ok: dict[tuple[int, int], tuple[int, str]] = field(default_factory=dict)
    #: (user, seq) of publishes that got no answer (in flight at the kill) or an error.
    unknown: set[tuple[int, int]] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    stop: bool = False


async def publisher(
    session: aiohttp.ClientSession, server: ServerProcess, run: Run, worker: int, seqs: Any
) -> None:
    url = f"{server.api_url}/publish"
    headers = {"X-API-Key": server.api_key, "Content-Type": "application/json"}
    n = 0
    while not run.stop:
        user = (worker + n * PUBLISHERS) % USERS
        seq = next(seqs)
        n += 1
        body = json.dumps({"channel": f"#u{user}", "data": {"seq": seq, "user": user}})
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                answer = await resp.json()
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            run.unknown.add((user, seq))
            run.errors[type(exc).__name__] += 1
            return  # the server is gone
        if "result" in answer:
            result = answer["result"]
            run.ok[(user, seq)] = (int(result["offset"]), str(result["epoch"]))
        else:
            run.unknown.add((user, seq))
            run.errors[f"api {answer.get('error')}"] += 1


async def receive_inbox(server: ServerProcess, user: int, expected: set[int]) -> Inbox:
    """Connect `u<user>` and wait until every expected offset is in (or time runs out)."""
    inbox = Inbox(server, f"u{user}")
    try:
        await inbox.connect()
        # A timeout waiting for offsets is reported by the loss count, not raised here.
        with contextlib.suppress(AssertionError):
            await inbox.received.wait_for(lambda: expected <= set(inbox.offsets), within=10)
    finally:
        await inbox.close()
    return inbox


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fsync", ["always", "batch", "never"])
async def test_no_acknowledged_publish_is_lost_on_sigkill(
    server_factory: Callable[..., ServerProcess], fsync: str
) -> None:
    server = server_factory({"personal_channel_fsync": fsync, "log_level": "warning"})
    run = Run()
    seqs = iter(range(10**9))
    connector = aiohttp.TCPConnector(limit=PUBLISHERS, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [
            asyncio.create_task(publisher(session, server, run, w, seqs)) for w in range(PUBLISHERS)
        ]
        started = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            elapsed = time.monotonic() - started
            if (elapsed >= RUN_FOR and len(run.ok) >= MIN_SUCCESSES) or elapsed >= MAX_RUN:
                break
        server.proc.kill()  # SIGKILL, mid-stream: publishers are still going
        killed_after = len(run.ok)
        await asyncio.wait_for(asyncio.gather(*tasks), 15)
        run.stop = True
    server.proc.wait(10)
    rate = killed_after / (time.monotonic() - started)
    print(
        f"\nfsync={fsync}: {len(run.ok)} publishes succeeded (~{rate:.0f}/s) before SIGKILL, "
        f"{len(run.unknown)} in flight or failed: {dict(run.errors)}"
    )
    assert len(run.ok) >= 100, "too few publishes succeeded to test anything"

    started = time.monotonic()
    await asyncio.to_thread(server.restart)
    print(f"restarted in {time.monotonic() - started:.2f}s")

    expected: dict[int, dict[int, tuple[int, str]]] = {}  # user -> offset -> (seq, epoch)
    for (user, seq), (offset, epoch) in run.ok.items():
        assert offset not in expected.setdefault(user, {}), "two successes got one offset"
        expected[user][offset] = (seq, epoch)

    semaphore = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(user: int) -> Inbox:
        async with semaphore:
            return await receive_inbox(server, user, set(expected.get(user, {})))

    started = time.monotonic()
    inboxes = await asyncio.gather(*(one(user) for user in range(USERS)))
    print(f"reconnected {USERS} users in {time.monotonic() - started:.2f}s")

    lost: list[tuple[int, int]] = []
    mismatched: list[tuple[int, int, Any]] = []
    duplicates = 0
    extra = 0
    unknown_by_user = Counter(user for user, _ in run.unknown)
    for user, inbox in enumerate(inboxes):
        want = expected.get(user, {})
        got: dict[int, Any] = {}
        counts = Counter(inbox.offsets)
        duplicates += sum(c - 1 for c in counts.values())
        for offset, data in inbox.received.pubs:
            got[offset] = data
        assert inbox.offsets == sorted(inbox.offsets), f"u{user} out of order: {inbox.offsets}"
        for offset, (seq, _) in want.items():
            if offset not in got:
                lost.append((user, offset))
            elif got[offset] != {"seq": seq, "user": user}:
                mismatched.append((user, offset, got[offset]))
        extra += len(set(got) - set(want))
        if want:
            sub = inbox.received.subscribed[-1]
            epochs = {epoch for _, epoch in want.values()}
            assert {sub.stream_position.epoch} == epochs, f"u{user}: the epoch changed"
        assert len(set(got) - set(want)) <= unknown_by_user[user], (
            f"u{user} received offsets nobody published: {sorted(set(got) - set(want))}"
        )
    print(
        f"fsync={fsync}: lost={len(lost)} duplicates={duplicates} "
        f"extra (in flight at the kill, stored anyway)={extra} mismatched={len(mismatched)}"
    )
    assert not lost, f"acknowledged publishes lost: {lost[:20]}"
    assert not mismatched, f"wrong data at an offset: {mismatched[:5]}"
