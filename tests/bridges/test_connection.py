"""NsqConnection against real nsqd: answers in order, heartbeats, errors not awaited."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.bridges.conftest import topic_count
from tests.peers.nsq_processes import NsqProcess
from tests.polling import until
from tidings.bridges.connection import (
    ConnectionLost,
    NsqCommandError,
    NsqConnection,
    split_address,
)
from tidings.protocol.nsq import MessageFrame


def test_split_address() -> None:
    assert split_address("127.0.0.1:4150") == ("127.0.0.1", 4150)
    assert split_address("[::1]:4150") == ("::1", 4150)
    assert split_address(":4150") == ("127.0.0.1", 4150)


async def test_identify_and_pipelined_answers(nsqd: NsqProcess) -> None:
    connection = NsqConnection(nsqd.tcp_address)
    settings = await connection.open({"client_id": "bridge-test"})
    assert settings["max_rdy_count"] == 2500
    answers = await asyncio.gather(
        connection.request(b"PUB a", b"1"), connection.request(b"PUB b", b"2")
    )
    assert answers == [b"OK", b"OK"]
    assert (topic_count(nsqd, "a"), topic_count(nsqd, "b")) == (1, 1)
    await connection.close()


async def test_unmatched_errors_do_not_answer_the_next_command(nsqd: NsqProcess) -> None:
    got: list[MessageFrame] = []
    connection = NsqConnection(nsqd.tcp_address, got.append)
    await connection.open()
    assert await connection.request(b"SUB t c") == b"OK"
    connection.send(b"FIN 0123456789abcdef")  # nsqd: E_FIN_FAILED, not fatal
    assert await connection.request(b"PUB t", b"x") == b"OK"
    connection.send(b"RDY 1")
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.05)
    assert [m.body for m in got] == [b"x"]
    await connection.close()


async def test_fatal_error_and_lost_connection(nsqd: NsqProcess) -> None:
    connection = NsqConnection(nsqd.tcp_address)
    await connection.open()
    with pytest.raises(NsqCommandError, match="E_BAD_TOPIC"):
        await connection.request(b"PUB a*b", b"x")
    await asyncio.wait_for(connection.closed.wait(), 5)  # nsqd closes after a fatal error
    with pytest.raises(ConnectionLost):
        connection.send(b"NOP")

    second = NsqConnection(nsqd.tcp_address)
    await second.open()
    nsqd.proc.send_signal(signal.SIGSTOP)
    await until(lambda: stopped(nsqd.proc.pid))  # else a busy nsqd may still answer the PUB
    waiting = asyncio.ensure_future(second.request(b"PUB t", b"x"))
    await asyncio.sleep(0.2)
    nsqd.proc.kill()
    nsqd.proc.send_signal(signal.SIGCONT)
    with pytest.raises(ConnectionLost):
        await waiting


def stopped(pid: int) -> bool:
    """Every thread of `pid` is stopped (SIGSTOP has taken effect, not just been sent)."""
    states = [
        stat.read_text().rsplit(")", 1)[1].split()[0]
        for stat in Path(f"/proc/{pid}/task").glob("*/stat")
    ]
    return bool(states) and all(state == "T" for state in states)


async def test_heartbeats_are_answered(nsqd: NsqProcess) -> None:
    connection = NsqConnection(nsqd.tcp_address)
    await connection.open({"heartbeat_interval": 1000})
    assert await connection.request(b"SUB t c") == b"OK"
    await asyncio.sleep(3.2)  # nsqd closes a client that misses two heartbeats
    assert not connection.closed.is_set()
    assert await connection.request(b"PUB t", b"alive") == b"OK"
    await connection.close()
