"""QueueConsumer against real nsqd (and through tidings lookup): FIN, REQ, RDY."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.bridges.conftest import channel_stats, pub
from tests.peers.nsq_processes import (
    NsqProcess,
    start_nsqd,
    start_tidings_lookup,
    wait_for,
)
from tests.polling import until
from tidings.bridges.consumer import Outcome, QueueConsumer, Requeue
from tidings.protocol.nsq import MessageFrame


async def test_fin_after_the_handler_req_when_asked_or_failed(nsqd: NsqProcess) -> None:
    seen: list[tuple[bytes, int]] = []

    async def handle(address: str, message: MessageFrame) -> Outcome:
        assert address == nsqd.tcp_address
        seen.append((message.body, message.attempts))
        if message.body == b"again" and message.attempts == 1:
            return Requeue(0)
        if message.body == b"boom" and message.attempts == 1:
            raise RuntimeError("a handler bug")  # requeued after 1 s, not fatal
        return None

    for body in (b"one", b"again", b"boom", b"two"):
        pub(nsqd, "work", body)
    consumer = QueueConsumer("work", "c", handle, nsqd_tcp_addresses=[nsqd.tcp_address])
    consumer.start()
    try:
        await until(lambda: consumer.finished == 4, 15)
    finally:
        await consumer.stop()
    assert sorted(seen) == sorted(
        [(b"one", 1), (b"again", 1), (b"again", 2), (b"boom", 1), (b"boom", 2), (b"two", 1)]
    )
    assert consumer.requeued == 2
    stats = channel_stats(nsqd, "work", "c")
    assert stats is not None and stats["depth"] == 0 and stats["requeue_count"] == 2


async def test_max_in_flight_is_split_over_the_daemons(tmp_path: Path) -> None:
    lookup = start_tidings_lookup(tmp_path)
    daemons = [start_nsqd(tmp_path, [lookup.tcp_address]) for _ in range(2)]
    release = asyncio.Event()

    async def slow(address: str, message: MessageFrame) -> Outcome:
        await release.wait()
        return None

    try:
        for daemon in daemons:
            for i in range(5):
                pub(daemon, "spread", b"%d" % i)
        wait_for(lambda: len(lookup.get("/lookup?topic=spread")[1].get("producers", [])) == 2)
        consumer = QueueConsumer(
            "spread",
            "c",
            slow,
            lookupd_http_addresses=[lookup.http_address],
            max_in_flight=4,
            lookupd_poll_interval=0.2,
        )
        consumer.start()
        try:
            await until(
                lambda: all(
                    (s := channel_stats(d, "spread", "c")) and s["in_flight_count"] >= 1
                    for d in daemons
                )
            )
            await asyncio.sleep(0.3)
            for daemon in daemons:
                stats = channel_stats(daemon, "spread", "c")
                assert stats is not None and stats["in_flight_count"] == 2  # 4 over 2 daemons
                assert [c["ready_count"] for c in stats["clients"]] == [2]
            release.set()
            await until(lambda: consumer.finished == 10)
        finally:
            await consumer.stop()
    finally:
        for daemon in daemons:
            daemon.stop()
        lookup.stop()
