"""The lookup HTTP API: nsqlookupd v1.3.0's answers, codes and headers."""

from __future__ import annotations

import pytest

from tests.lookup.conftest import RunningLookup
from tidings.lookup.http import HTTPError, parse_query


async def test_ping_and_info(lookup: RunningLookup) -> None:
    assert await lookup.get("/ping") == (200, "OK")
    assert await lookup.get("/info") == (200, {"version": "1.3.0"})


async def test_v1_headers_whatever_the_accept_header(lookup: RunningLookup) -> None:
    url = f"http://127.0.0.1:{lookup.server.ports.http}/topics"
    for accept in ("application/vnd.nsq; version=1.0", "*/*"):
        async with lookup.http.get(url, headers={"Accept": accept}) as response:
            assert response.headers["X-NSQ-Content-Type"] == "nsq; version=1.0"
            assert response.headers["Content-Type"] == "application/json; charset=utf-8"
            assert await response.json() == {"topics": []}  # no status_code/data wrapper


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/lookup", 400, "MISSING_ARG_TOPIC"),
        ("GET", "/lookup?topic=nope", 404, "TOPIC_NOT_FOUND"),
        ("GET", "/lookup?topic=%zz", 400, "INVALID_REQUEST"),
        ("GET", "/lookup?topic=a;b", 400, "INVALID_REQUEST"),
        ("GET", "/channels", 400, "MISSING_ARG_TOPIC"),
        ("GET", "/nope", 404, "NOT_FOUND"),
        ("POST", "/ping", 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/topic/create?topic=t", 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/topic/create", 400, "MISSING_ARG_TOPIC"),
        ("POST", "/topic/create?topic=bad/name", 400, "INVALID_ARG_TOPIC"),
        ("POST", "/topic/delete", 400, "MISSING_ARG_TOPIC"),
        ("POST", "/channel/create?topic=t", 400, "MISSING_ARG_CHANNEL"),
        ("POST", "/channel/create?topic=t&channel=", 400, "INVALID_ARG_CHANNEL"),
        ("POST", "/channel/create?channel=c", 400, "MISSING_ARG_TOPIC"),
        ("POST", "/channel/delete?topic=t&channel=c", 404, "CHANNEL_NOT_FOUND"),
        ("POST", "/topic/tombstone?topic=t", 400, "MISSING_ARG_NODE"),
    ],
)
async def test_errors(
    lookup: RunningLookup, method: str, path: str, status: int, message: str
) -> None:
    assert await lookup.get(path, method=method) == (status, {"message": message})


async def test_create_and_delete_topics_and_channels(lookup: RunningLookup) -> None:
    assert await lookup.post("/topic/create?topic=t1") == (200, "")
    assert await lookup.post("/channel/create?topic=t2&channel=c") == (200, "")
    assert await lookup.get("/topics") == (200, {"topics": ["t1", "t2"]})
    assert await lookup.get("/lookup?topic=t2") == (200, {"channels": ["c"], "producers": []})
    assert await lookup.post("/channel/delete?topic=t2&channel=c") == (200, "")
    assert await lookup.get("/channels?topic=t2") == (200, {"channels": []})
    assert await lookup.post("/channel/create?topic=t2&channel=c") == (200, "")
    assert await lookup.post("/topic/delete?topic=t2") == (200, "")
    assert await lookup.post("/topic/delete?topic=never-there") == (200, "")
    assert await lookup.get("/topics") == (200, {"topics": ["t1"]})
    assert await lookup.get("/channels?topic=t2") == (200, {"channels": []})


async def test_tombstone_hides_a_node_from_one_topic(lookup: RunningLookup) -> None:
    first = await lookup.node(http_port=4151)
    second = await lookup.node(http_port=5151, tcp_port=5150)
    for registrant in (first, second):
        assert await registrant.call(b"REGISTER t\n") == b"OK"
        assert await registrant.call(b"REGISTER u\n") == b"OK"
    assert await lookup.post("/topic/tombstone?topic=t&node=127.0.0.1:5151") == (200, "")
    ports = [p["http_port"] for p in (await lookup.get("/lookup?topic=t"))[1]["producers"]]
    assert ports == [4151]
    assert len((await lookup.get("/lookup?topic=u"))[1]["producers"]) == 2
    nodes = {n["http_port"]: n for n in (await lookup.get("/nodes"))[1]["producers"]}
    assert nodes[5151]["topics"] == ["t", "u"]
    assert nodes[5151]["tombstones"] == [True, False]
    assert nodes[4151]["tombstones"] == [False, False]
    lookup.clock.advance(46)
    assert len((await lookup.get("/lookup?topic=t"))[1]["producers"]) == 2
    await first.close()
    await second.close()


def test_query_parsing_is_as_strict_as_go() -> None:
    assert parse_query("topic=a+b&topic=c&&x") == {"topic": ["a b", "c"], "x": [""]}
    assert parse_query("t=%23ephemeral") == {"t": ["#ephemeral"]}
    for bad in ("t=%2", "t=%g0", "a=1;b=2"):
        with pytest.raises(HTTPError):
            parse_query(bad)
