"""Replication: PUB is answered once the replica has it; kill the primary, lose nothing."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.integration.support.queue import QueueProcess, RawClient, body, start_queue
from tests.integration.support.queue_load import Load, drain


@contextmanager
def primary_and_replica(
    tmp_path: Path, primary_flags: Sequence[str] = (), replica_flags: Sequence[str] = ()
) -> Iterator[tuple[QueueProcess, QueueProcess]]:
    """A replica, then a primary that replicates to it; both killed on the way out."""
    replica = start_queue(tmp_path, *replica_flags, name="replica", replication=True)
    try:
        primary = start_queue(
            tmp_path,
            "--replica",
            f"127.0.0.1:{replica.replication_port}",
            *primary_flags,
            name="primary",
        )
        try:
            yield primary, replica
        finally:
            primary.kill()
    finally:
        replica.kill()


async def test_kill_primary_replica_has_every_answered_message(tmp_path: Path) -> None:
    batch = ("--fsync", "batch")
    pair = primary_and_replica(tmp_path, (*batch, "--checkpoint-interval", "200ms"), batch)
    with pair as (primary, replica):
        load = Load(primary.tcp_port, "rep", "c", producers=2)
        await asyncio.sleep(1.5)
        # While the primary is connected, the replica refuses its own clients' publishes.
        refused = await RawClient.connect(replica.tcp_port)
        refused.send(b"PUB rep\n" + body(b"split brain"))
        assert (await refused.response()).startswith(b"ERR E_PUB_FAILED")
        primary.kill(signal.SIGKILL)
        await load.stop()
        answered, seen_before = load.answered, load.seen
        assert len(answered) > 50, "the load did not run"
        seen_after = await drain(replica.tcp_port, "rep", "c")
        consumed = set(seen_before) | set(seen_after)
        lost = answered - consumed
        duplicates = len(seen_before) + len(seen_after) - len(consumed)
        print(json.dumps({"answered": len(answered), "lost": len(lost), "dups": duplicates}))
        assert lost == set()
        # The replica only resumes the channel near where the primary left it.
        assert len(seen_after) < len(answered)
        # Producers moving to the replica publish there.
        client = await RawClient.connect(replica.tcp_port)
        client.send(b"PUB rep\n" + body(b"after failover"))
        assert await client.response() == b"OK"
        client.close()


async def test_publish_fails_while_the_replica_is_down(tmp_path: Path) -> None:
    with primary_and_replica(tmp_path, ("--replica-timeout", "1s")) as (primary, replica):
        client = await RawClient.connect(primary.tcp_port)
        for _ in range(50):  # the link connects in the background
            client.send(b"PUB t\n" + body(b"first"))
            answer = await client.response()
            if answer == b"OK":
                break
            client = await RawClient.connect(primary.tcp_port)
            await asyncio.sleep(0.1)
        assert answer == b"OK"
        replica.kill(signal.SIGKILL)
        await asyncio.sleep(0.3)
        client.send(b"PUB t\n" + body(b"second"))
        answer = await client.response()
        assert answer.startswith(b"ERR E_PUB_FAILED PUB failed replica")
        client.close()
        # Back again: the link catches up and publishes are answered.
        replica.start()
        for _ in range(100):
            client = await RawClient.connect(primary.tcp_port)
            client.send(b"PUB t\n" + body(b"third"))
            answer = await client.response()
            client.close()
            if answer == b"OK":
                break
            await asyncio.sleep(0.1)
        assert answer == b"OK"
        got = await drain(replica.tcp_port, "t", "c")
        assert set(got) >= {b"first", b"third"}


async def test_replica_drops_what_the_primary_finished(tmp_path: Path) -> None:
    with primary_and_replica(tmp_path, ("--checkpoint-interval", "100ms")) as (primary, replica):
        for _ in range(100):
            if primary.http("POST", "/pub?topic=fin", b"warm-up")[0] == 200:
                break
            await asyncio.sleep(0.1)
        for n in range(20):
            assert primary.http("POST", "/pub?topic=fin", b"m%d" % n)[0] == 200
        replica_topic = next(t for t in replica.stats()["topics"] or [] if t["topic_name"] == "fin")
        assert replica_topic["depth"] == 21  # held for the primary's consumers
        assert await drain(primary.tcp_port, "fin", "c", idle=0.5)
        for _ in range(100):
            topics = replica.stats()["topics"] or []
            if topics and topics[0]["depth"] == 0:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the replica still holds finished messages: {topics}")
        # A channel the primary had resumes on the replica where it stood: nothing again.
        assert await drain(replica.tcp_port, "fin", "c", idle=0.5) == []
