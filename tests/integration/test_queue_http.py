"""nsqd's HTTP API on `tidings queue`: publish, admin, stats; the disk budget."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.integration.support.queue import QueueProcess, RawClient, start_queue


@pytest.fixture
def queue_flags() -> list[str]:
    return ["--max-msg-size", "100", "--max-body-size", "1000"]


def test_ping_info(queue: QueueProcess) -> None:
    assert queue.http("GET", "/ping") == (200, b"OK")
    status, raw = queue.http("GET", "/info")
    info = json.loads(raw)
    assert status == 200 and info["tcp_port"] == queue.tcp_port
    assert info["http_port"] == queue.http_port and info["version"]


def test_publish_errors(queue: QueueProcess) -> None:
    assert queue.http("POST", "/pub", b"x") == (400, b'{"message":"MISSING_ARG_TOPIC"}')
    assert queue.http("POST", "/pub?topic=a/b", b"x") == (400, b'{"message":"INVALID_TOPIC"}')
    assert queue.http("POST", "/pub?topic=t", b"") == (400, b'{"message":"MSG_EMPTY"}')
    assert queue.http("POST", "/pub?topic=t", b"x" * 101) == (413, b'{"message":"MSG_TOO_BIG"}')
    assert queue.http("POST", "/pub?topic=t&defer=x", b"x") == (400, b'{"message":"INVALID_DEFER"}')
    assert queue.http("POST", "/mpub?topic=t", b"x\n" * 600) == (413, b'{"message":"BODY_TOO_BIG"}')
    status, _ = queue.http("POST", "/mpub?topic=t&binary=true", struct.pack(">i", 3) + b"xx")
    assert status == 413


async def test_publish_then_consume(queue: QueueProcess) -> None:
    assert queue.http("POST", "/pub?topic=web", b"one") == (200, b"OK")
    assert queue.http("POST", "/mpub?topic=web", b"two\nthree\n\n") == (200, b"OK")
    binary = struct.pack(">i", 2) + struct.pack(">i", 4) + b"four" + struct.pack(">i", 4) + b"five"
    assert queue.http("POST", "/mpub?topic=web&binary=true", binary) == (200, b"OK")
    assert queue.http("POST", "/pub?topic=web&defer=60000", b"later") == (200, b"OK")
    client = await RawClient.connect(queue.tcp_port)
    client.send(b"SUB web c\nRDY 10\n")
    assert await client.response() == b"OK"
    bodies = [(await client.message()).body for _ in range(5)]
    assert bodies == [b"one", b"two", b"three", b"four", b"five"]
    stats = queue.channel_stats("web", "c")
    assert stats["deferred_count"] == 1 and stats["in_flight_count"] == 5
    assert stats["client_count"] == 1 and stats["clients"][0]["in_flight_count"] == 5
    client.close()


def test_admin_actions(queue: QueueProcess) -> None:
    assert queue.http("POST", "/topic/delete?topic=none")[0] == 404
    assert queue.http("POST", "/topic/create?topic=adm")[0] == 200
    assert queue.http("POST", "/channel/create?topic=adm&channel=c&max_attempts=3")[0] == 200
    assert queue.http("POST", "/channel/pause?topic=adm&channel=x") == (
        404,
        b'{"message":"CHANNEL_NOT_FOUND"}',
    )
    assert queue.http("POST", "/pub?topic=adm", b"m")[0] == 200
    assert queue.http("POST", "/channel/pause?topic=adm&channel=c")[0] == 200
    assert queue.http("POST", "/topic/pause?topic=adm")[0] == 200
    stats = queue.stats()["topics"][0]
    assert stats["paused"] and stats["channels"][0]["paused"]
    assert stats["channels"][0]["max_attempts"] == 3 and stats["channels"][0]["depth"] == 1
    assert queue.http("POST", "/channel/empty?topic=adm&channel=c")[0] == 200
    assert queue.channel_stats("adm", "c")["depth"] == 0
    assert queue.http("POST", "/channel/delete?topic=adm&channel=c")[0] == 200
    assert queue.http("POST", "/topic/delete?topic=adm")[0] == 200
    assert queue.stats()["topics"] is None  # as nsqd: null, not []


async def test_retention_limit_refuses_publishes_and_keeps_what_was_answered(
    tmp_path: Path,
) -> None:
    queue = start_queue(tmp_path, "--retention-bytes", "20k", "--segment-bytes", "4k", name="full")
    try:
        client = await RawClient.connect(queue.tcp_port)
        answered: list[bytes] = []
        refusal = b""
        for n in range(1000):
            message = b"%04d" % n + b"x" * 200
            client.send(b"PUB full\n" + struct.pack(">i", len(message)) + message)
            answer = await client.response()
            if answer != b"OK":
                refusal = answer
                break
            answered.append(message)
        assert refusal.startswith(b"ERR E_PUB_FAILED PUB failed disk full")
        assert await client.closed()
        status, raw = queue.http("POST", "/pub?topic=full", b"m" * 204)
        assert status == 503 and json.loads(raw)["message"].startswith("PUB_FAILED disk full")
        # Consuming frees the segments; the answered messages are all there.
        consumer = await RawClient.connect(queue.tcp_port)
        consumer.send(b"SUB full c\nRDY 100\n")
        assert await consumer.response() == b"OK"
        got = []
        for _ in answered:
            message = await consumer.message()
            got.append(message.body)
            consumer.send(b"FIN " + message.message_id + b"\n")
        assert got == answered
        consumer.close()
        for _ in range(100):
            if queue.http("POST", "/pub?topic=full", b"m" * 204)[0] == 200:
                break
            await __import__("asyncio").sleep(0.1)
        else:
            raise AssertionError("segments were not deleted after consumption")
    finally:
        queue.kill()


async def test_stats_list_producers_like_nsqd(queue: QueueProcess) -> None:
    assert queue.stats()["producers"] is None  # nsqd sends null when nobody published
    client = await RawClient.connect(queue.tcp_port)
    client.send(b"PUB a\n" + struct.pack(">i", 1) + b"x" + b"PUB b\n" + struct.pack(">i", 1) + b"y")
    assert await client.response() == b"OK"
    assert await client.response() == b"OK"
    (producer,) = queue.stats()["producers"]
    assert producer["pub_counts"] == [{"topic": "a", "count": 1}, {"topic": "b", "count": 1}]
    assert producer["remote_address"].startswith("127.0.0.1:")
    client.close()


# (method, path, body) -> (status, body) as nsqd v1.3.0 answered them (recorded locally).
NSQD_HTTP = [
    ("POST", "/pub", b"x", 400, b'{"message":"MISSING_ARG_TOPIC"}'),
    ("POST", "/pub?topic=a*b", b"x", 400, b'{"message":"INVALID_TOPIC"}'),
    ("POST", "/pub?topic=t&defer=-1", b"x", 400, b'{"message":"INVALID_DEFER"}'),
    ("POST", "/pub?topic=t&defer=3600001", b"x", 400, b'{"message":"INVALID_DEFER"}'),
    ("POST", "/pub?topic=t&defer=10", b"x", 200, b"OK"),
    ("POST", "/mpub?topic=t", b"", 200, b"OK"),
    ("POST", "/mpub?topic=t", b"a\nb\n", 200, b"OK"),
    ("POST", "/mpub?topic=t&binary=true", b"xx", 413, b'{"message":"BAD_BODY"}'),
    ("POST", "/topic/create", b"", 400, b'{"message":"MISSING_ARG_TOPIC"}'),
    ("POST", "/topic/create?topic=a*b", b"", 400, b'{"message":"INVALID_TOPIC"}'),
    ("POST", "/topic/delete?topic=none", b"", 404, b'{"message":"TOPIC_NOT_FOUND"}'),
    ("POST", "/topic/pause?topic=none", b"", 404, b'{"message":"TOPIC_NOT_FOUND"}'),
    ("POST", "/channel/create?topic=t", b"", 400, b'{"message":"MISSING_ARG_CHANNEL"}'),
    ("POST", "/channel/create?topic=t&channel=a*b", b"", 400, b'{"message":"INVALID_ARG_CHANNEL"}'),
    ("POST", "/channel/delete?topic=t&channel=none", b"", 404, b'{"message":"CHANNEL_NOT_FOUND"}'),
    ("POST", "/channel/create?topic=none&channel=c", b"", 404, b'{"message":"TOPIC_NOT_FOUND"}'),
    ("POST", "/topic/empty?topic=t", b"", 200, b""),
    ("GET", "/ping", None, 200, b"OK"),
    ("POST", "/ping", b"", 405, b'{"message":"METHOD_NOT_ALLOWED"}'),
    ("GET", "/topic/create?topic=x", None, 405, b'{"message":"METHOD_NOT_ALLOWED"}'),
]


def test_http_answers_match_nsqd(tmp_path: Path) -> None:
    queue = start_queue(tmp_path, name="nsqd-http")
    try:
        got = [(m, p, b, *queue.http(m, p, b)) for m, p, b, _, _ in NSQD_HTTP]
        assert got == NSQD_HTTP
    finally:
        queue.kill()
