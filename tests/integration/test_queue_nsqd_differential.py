"""Live differential tests: the same TCP sessions and HTTP calls against real nsqd and tidings.

nsqd v1.3.0 (built by scripts/build-nsq-peers.sh) and `tidings queue` run side by
side, each on free ports with its own data path. Every scripted session (the
recorded ones of test_queue_nsqd_sessions.py plus a few more) and every HTTP
call of test_queue_http.py goes to both; the answers must be equal. The
`/stats?format=json` field sets are compared too, with the documented
differences (docs/queue.md, "Differences from nsqd") as the only exceptions.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.support.queue import QueueProcess, RawClient, body, start_queue
from tests.integration.test_queue_http import NSQD_HTTP
from tests.integration.test_queue_nsqd_sessions import SESSIONS, transcript
from tests.peers.nsq_processes import NsqProcess, http_exchange, start_nsqd

pytestmark = [pytest.mark.timeout(120)]

# Sessions not in the recorded set: asked of both servers, the answers compared.
EXTRA_SESSIONS: list[tuple[str, bytes]] = [
    ("garbage_binary", b"\x00\x01\xff\xfe garbage\n"),
    ("lower_case", b"pub t\n" + body(b"x")),
    ("pub_long_topic", b"PUB " + b"t" * 65 + b"\n" + body(b"x")),
    ("pub_ephemeral", b"PUB t#ephemeral\n" + body(b"x")),
    ("pub_negative", b"PUB t\n" + struct.pack(">i", -1)),
    ("mpub_negative", b"MPUB t\n" + struct.pack(">i", -5)),
    ("mpub_one_empty", b"MPUB t\n" + body(struct.pack(">i", 1) + body(b""))),
    ("dpub_noparam", b"DPUB t\n"),
    ("dpub_negative", b"DPUB t -1\n"),
    ("nop", b"NOP\n"),
    ("identify_twice", b"IDENTIFY\n" + body(b"{}") + b"IDENTIFY\n" + body(b"{}")),
    ("identify_unknown_field", b"IDENTIFY\n" + body(b'{"whatever": 1}')),
    ("identify_hb_low", b"IDENTIFY\n" + body(b'{"heartbeat_interval": 999}')),
    ("identify_msgto_high", b"IDENTIFY\n" + body(b'{"msg_timeout": 900001}')),
    ("sub_bad_topic", b"SUB t*t c\n"),
    ("sub_ephemeral", b"SUB e#ephemeral c#ephemeral\nRDY 1\n"),
    ("sub_rdy_max", b"SUB t c2\nRDY 2500\n"),
    ("sub_touch_short", b"SUB t c\nTOUCH 12\n"),
    ("sub_req_bad_timeout", b"SUB t c\nREQ 0123456789abcdef x\n"),
    ("sub_req_negative", b"SUB t c\nREQ 0123456789abcdef -1\n"),
    ("sub_then_pub", b"SUB t c\nPUB t\n" + body(b"x")),
    ("sub_then_identify", b"SUB t c\nIDENTIFY\n" + body(b"{}")),
    ("rdy_twice_params", b"SUB t c\nRDY 1 2\n"),
    ("fin_noparam", b"SUB t c\nFIN\n"),
]


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[NsqProcess, QueueProcess]]:
    nsqd = start_nsqd(tmp_path_factory.mktemp("differential-nsqd"))
    queue = start_queue(tmp_path_factory.mktemp("differential-tidings"))
    yield nsqd, queue
    nsqd.stop()
    queue.kill()


async def both(servers: tuple[NsqProcess, QueueProcess], data: bytes) -> tuple[list[str], ...]:
    nsqd, queue = servers
    answers = await asyncio.gather(
        transcript(nsqd.tcp_port, data), transcript(queue.tcp_port, data)
    )
    return tuple(answers)


@pytest.mark.parametrize(("name", "data", "_"), SESSIONS, ids=[s[0] for s in SESSIONS])
async def test_recorded_session_live(
    servers: tuple[NsqProcess, QueueProcess], name: str, data: bytes, _: list[str]
) -> None:
    from_nsqd, from_tidings = await both(servers, data)
    assert from_tidings == from_nsqd


def documented(name: str, from_nsqd: list[str]) -> list[str]:
    """nsqd's answer changed by the differences docs/queue.md lists (none for most sessions)."""
    if name == "garbage_binary":
        # nsqd echoes the raw bytes of a bad command; tidings decodes them as UTF-8
        # with replacement characters (its error texts are always valid UTF-8).
        return [
            line.encode(errors="surrogateescape")
            .decode("unicode_escape")
            .encode("latin-1")
            .decode(errors="replace")
            for line in from_nsqd
        ]
    return from_nsqd


@pytest.mark.parametrize(("name", "data"), EXTRA_SESSIONS, ids=[s[0] for s in EXTRA_SESSIONS])
async def test_extra_session_live(
    servers: tuple[NsqProcess, QueueProcess], name: str, data: bytes
) -> None:
    from_nsqd, from_tidings = await both(servers, data)
    assert from_tidings == documented(name, from_nsqd)


async def first_answer(port: int, magic: bytes) -> tuple[bytes, str]:
    """What a server says to a wrong magic, and whether it then closes the connection."""
    client = await RawClient.connect(port, magic=magic)  # nothing more: no unread input
    try:
        frame = await client.frame(within=2)
        try:
            while await asyncio.wait_for(client.reader.read(65536), 2):
                pass
        except TimeoutError:
            return frame.data, "(open)"
        except ConnectionResetError:
            pass  # closed with unread input: a reset instead of an orderly close
        return frame.data, "(closed)"
    finally:
        client.close()


@pytest.mark.parametrize("magic", [b"  V1", b"GET ", b"\x00\x00\x00\x00"])
async def test_wrong_magic_live(servers: tuple[NsqProcess, QueueProcess], magic: bytes) -> None:
    nsqd, queue = servers
    from_nsqd = await first_answer(nsqd.tcp_port, magic)
    assert await first_answer(queue.tcp_port, magic) == from_nsqd


def normalised(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def test_http_answers_live(servers: tuple[NsqProcess, QueueProcess]) -> None:
    nsqd, queue = servers
    for method, path, data, _, _ in NSQD_HTTP:
        status, _, answer = http_exchange(nsqd.http_port, path, method, data=data)
        expected = (status, normalised(answer))
        status, _, answer = http_exchange(queue.http_port, path, method, data=data)
        assert (method, path, status, normalised(answer)) == (method, path, *expected)


# Fields tidings adds to /stats (documented in docs/queue.md), and nsqd's it leaves out.
ADDED = {"top": {"disk_bytes", "pid"}, "channel": {"max_attempts"}}
LEFT_OUT = {"top": {"memory"}}


async def stats_shapes(port: int, http_port: int) -> dict[str, set[str]]:
    client = await RawClient.connect(port)
    client.send(b"PUB shape\n" + body(b"x") + b"SUB shape c\nRDY 1\n")
    assert await client.response() == b"OK"
    assert await client.response() == b"OK"
    await client.message()
    status, _, raw = http_exchange(http_port, "/stats?format=json")
    client.close()
    assert status == 200
    stats = json.loads(raw)
    (topic,) = [t for t in stats["topics"] if t["topic_name"] == "shape"]
    (channel,) = topic["channels"]
    (client_stats,) = channel["clients"]
    (producer,) = stats["producers"][:1]
    return {
        "top": set(stats),
        "topic": set(topic),
        "channel": set(channel),
        "client": set(client_stats),
        "producer": set(producer),
    }


async def test_stats_field_sets_live(servers: tuple[NsqProcess, QueueProcess]) -> None:
    nsqd, queue = servers
    from_nsqd = await stats_shapes(nsqd.tcp_port, nsqd.http_port)
    from_tidings = await stats_shapes(queue.tcp_port, queue.http_port)
    for level, fields in from_nsqd.items():
        expected = (fields - LEFT_OUT.get(level, set())) | ADDED.get(level, set())
        assert from_tidings[level] == expected, level
