"""QueueProducer against real nsqd: OK means published; bounded waiting; clear refusals."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.bridges.conftest import topic_count
from tests.conftest import free_port
from tests.peers.nsq_processes import NsqProcess
from tidings.bridges.producer import QueueProducer, QueueUnavailable


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


async def stopped(nsqd: NsqProcess) -> None:
    """Wait until the kernel shows nsqd stopped (a signal is not delivered synchronously)."""
    for _ in range(200):
        if state(nsqd.proc.pid) == "T":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("nsqd did not stop")


async def started(address: str, **options: int) -> QueueProducer:
    producer = QueueProducer(address, **options)
    producer.start()
    await asyncio.wait_for(producer.wait_connected(), 10)
    return producer


async def test_publish_then_a_refused_topic_then_publish_again(nsqd: NsqProcess) -> None:
    producer = await started(nsqd.tcp_address)
    await producer.publish("up", b"one")
    assert topic_count(nsqd, "up") == 1
    with pytest.raises(QueueUnavailable, match="E_BAD_TOPIC"):
        await producer.publish("bad*name", b"x")
    await asyncio.wait_for(producer.wait_connected(), 10)  # nsqd closed it; reopened
    for _ in range(50):
        try:
            await producer.publish("up", b"two")
            break
        except QueueUnavailable:
            await asyncio.sleep(0.1)
    assert topic_count(nsqd, "up") == 2
    await producer.stop()


async def test_at_most_max_pending_wait(nsqd: NsqProcess) -> None:
    producer = await started(nsqd.tcp_address, max_pending=2)
    nsqd.proc.send_signal(signal.SIGSTOP)  # nsqd answers nothing while stopped
    await stopped(nsqd)
    try:
        waiting = [asyncio.ensure_future(producer.publish("t", b"%d" % i)) for i in range(2)]
        for _ in range(100):
            if producer.pending == 2:
                break
            await asyncio.sleep(0.01)
        assert producer.pending == 2
        with pytest.raises(QueueUnavailable, match="2 publishes already wait"):
            await producer.publish("t", b"third")
    finally:
        nsqd.proc.send_signal(signal.SIGCONT)
    await asyncio.gather(*waiting)
    assert topic_count(nsqd, "t") == 2
    assert (producer.published, producer.refused, producer.pending) == (2, 1, 0)
    await producer.stop()


async def test_nothing_listening_is_refused_at_once() -> None:
    producer = QueueProducer(f"127.0.0.1:{free_port()}")
    producer.start()
    await asyncio.sleep(0.2)
    with pytest.raises(QueueUnavailable, match="not connected"):
        await producer.publish("t", b"x")
    await producer.stop()
