"""The map server API methods (Centrifugo v6 names and shapes) against an in-process Node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.test_methods import fails, run
from tests.core.conftest import make_settings
from tidings.api.methods import ServerApi
from tidings.core.node import Node
from tidings.errors import ReplyError

MAP: dict[str, Any] = {
    "subscription_type": "map",
    "map_stream_size": 10,
    "map_stream_ttl": "1m",
}


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    ephemeral = {"subscription_type": "map"}
    created = Node(make_settings(namespaces={"m": MAP, "eph": ephemeral, "plain": {}}))
    yield created
    await created.stop()


@pytest.fixture
def api(node: Node) -> ServerApi:
    return ServerApi(node)


async def test_publish_read_remove_stats_clear(api: ServerApi) -> None:
    first = await run(api, "map_publish", {"channel": "m:a", "key": "k1", "data": {"v": 1}})
    assert first["offset"] == 1 and first["epoch"]
    await run(api, "map_publish", {"channel": "m:a", "key": "k2", "data": [2]})
    # limit 0 (the default): the position only, as Centrifugo v6.9.1 answers.
    position_only = await run(api, "map_read_state", {"channel": "m:a"})
    assert position_only == {"offset": 2, "epoch": first["epoch"]}
    state = await run(api, "map_read_state", {"channel": "m:a", "limit": 10})
    assert [(e["key"], e["data"], e["offset"]) for e in state["entries"]] == [
        ("k1", {"v": 1}, 1),
        ("k2", [2], 2),
    ]
    assert state["offset"] == 2 and state["epoch"] == first["epoch"] and "cursor" not in state
    page = await run(api, "map_read_state", {"channel": "m:a", "limit": 1})
    assert [e["key"] for e in page["entries"]] == ["k1"] and page["cursor"] == "k1"
    removed = await run(api, "map_remove", {"channel": "m:a", "key": "k1"})
    assert removed == {"offset": 3, "epoch": first["epoch"]}
    again = await run(api, "map_remove", {"channel": "m:a", "key": "k1"})
    assert again["suppressed"] is True and again["suppress_reason"] == "key_not_found"
    since = {"channel": "m:a", "since_offset": 1, "since_epoch": first["epoch"], "limit": 10}
    stream = await run(api, "map_read_stream", since)
    assert [(e["key"], e.get("removed", False)) for e in stream["entries"]] == [
        ("k2", False),
        ("k1", True),
    ]
    assert await run(api, "map_stats", {"channel": "m:a"}) == {"num_keys": 1}
    assert await run(api, "map_clear", {"channel": "m:a"}) == {}
    assert await run(api, "map_stats", {"channel": "m:a"}) == {}
    gone = {"channel": "m:a", "since_offset": 1, "since_epoch": first["epoch"]}
    assert await fails(api, "map_read_stream", gone) == 112


@pytest.mark.parametrize(
    "method, body",
    [
        ("map_publish", {"channel": "plain:x", "key": "k", "data": 1}),
        ("map_publish", {"channel": "m:x", "key": "", "data": 1}),
        ("map_publish", {"channel": "m:x", "key": "k" * 2000, "data": 1}),
        ("map_publish", {"channel": "", "key": "k", "data": 1}),
        ("map_publish", {"channel": "m:x", "key": "k", "data": 1, "key_mode": "if_old"}),
        ("map_publish", {"channel": "m:x", "key": "k", "data": 1, "score": 3}),
        ("map_publish", {"channel": "m:x", "key": "k", "data": 1, "version": -1}),
        ("map_publish", {"channel": "eph:x", "key": "k", "data": 1, "version": 3}),
        ("map_publish", {"channel": "m:x", "key": "k", "b64data": "!!"}),
        ("map_publish", {"channel": "m:x", "key": "k", "b64data": "bm90IGpzb24="}),
        ("map_remove", {"channel": "m:x", "key": ""}),
        ("map_publish", {"channel": "m:x", "key": "k", "data": 1, "bogus": 1}),
        ("map_read_state", {"channel": "m:x", "limit": -1}),
        ("map_read_stream", {"channel": "m:x", "since_offset": 2**64}),
        ("map_read_stream", {"channel": "m:x", "since_offset": -1}),
        ("map_stats", {"channel": "plain:x"}),
    ],
)
async def test_bad_requests_are_107(api: ServerApi, method: str, body: dict[str, Any]) -> None:
    assert await fails(api, method, body) == 107


async def test_odd_keys_round_trip(api: ServerApi) -> None:
    keys = ["a b", "ключ", "{brace}", "new\nline", "\u2603", "🙂", "x" * 1024]
    for key in keys:
        await run(api, "map_publish", {"channel": "m:odd", "key": key, "data": key})
    state = await run(api, "map_read_state", {"channel": "m:odd", "limit": 1000})
    assert await run(api, "map_read_state", {"channel": "m:never", "limit": 10}) == {}
    assert {e["key"]: e["data"] for e in state["entries"]} == {k: k for k in keys}


@pytest.mark.parametrize(
    "body",
    [
        b'{"channel": "m:x", "key": "\\udcff", "data": 1}',
        b'{"channel": "m:x", "key": "\xff", "data": 1}',
    ],
)
async def test_invalid_utf8_key_is_refused(api: ServerApi, body: bytes) -> None:
    with pytest.raises(ReplyError) as info:
        await api.call("map_publish", api.decode("map_publish", body))
    assert info.value.code == 107
    assert await run(api, "map_stats", {"channel": "m:x"}) == {}


async def test_plain_publish_to_a_map_channel_is_refused(api: ServerApi) -> None:
    assert await fails(api, "publish", {"channel": "m:a", "data": {"x": 1}}) == 107
    assert await run(api, "map_stats", {"channel": "m:a"}) == {}


async def test_conditional_writes_answer_as_centrifugo(api: ServerApi) -> None:
    """idempotency_key, version/version_epoch and key_mode: suppressed writes change nothing."""
    pub = {"channel": "m:c", "key": "k", "data": {"v": 1}}
    first = await run(api, "map_publish", pub | {"idempotency_key": "op1", "version": 2})
    repeat = await run(api, "map_publish", pub | {"idempotency_key": "op1", "data": {"v": 9}})
    assert repeat == first | {"suppressed": True, "suppress_reason": "idempotency"}
    old = await run(api, "map_publish", pub | {"version": 2})
    assert old["suppress_reason"] == "version" and old["offset"] == 1
    newer = await run(api, "map_publish", pub | {"version": 1, "version_epoch": "e2"})
    assert "suppressed" not in newer and newer["offset"] == 2
    exists = await run(api, "map_publish", pub | {"key_mode": "if_new"})
    assert exists["suppress_reason"] == "key_exists"
    absent = await run(api, "map_publish", pub | {"key": "nope", "key_mode": "if_exists"})
    assert absent["suppress_reason"] == "key_not_found"
    tagged = pub | {"key": "t", "tags": {"team": "red"}, "b64data": "WzEsMl0=", "delta": True}
    await run(api, "map_publish", tagged)
    state = await run(api, "map_read_state", {"channel": "m:c", "limit": 10})
    assert [(e["key"], e["data"], e.get("tags")) for e in state["entries"]] == [
        ("k", {"v": 1}, None),
        ("t", [1, 2], {"team": "red"}),
    ]
    removed = await run(api, "map_remove", {"channel": "m:c", "key": "t", "idempotency_key": "r"})
    again = await run(api, "map_remove", {"channel": "m:c", "key": "t", "idempotency_key": "r"})
    assert again == removed | {"suppressed": True, "suppress_reason": "idempotency"}
    empty = await run(api, "map_publish", {"channel": "m:c", "key": "e"})
    assert empty["offset"] == removed["offset"] + 1


async def test_read_stream_reverse_pages_back(api: ServerApi) -> None:
    for i in range(1, 6):
        await run(api, "map_publish", {"channel": "m:r", "key": f"k{i}", "data": i})
    newest = await run(api, "map_read_stream", {"channel": "m:r", "limit": 2, "reverse": True})
    assert [e["offset"] for e in newest["entries"]] == [5, 4]
    back = {"channel": "m:r", "limit": 10, "reverse": True, "since_epoch": newest["epoch"]}
    older = await run(api, "map_read_stream", back | {"since_offset": 4})
    assert [e["key"] for e in older["entries"]] == ["k3", "k2", "k1"]
    assert (
        await fails(api, "map_read_stream", back | {"since_epoch": "x", "since_offset": 4}) == 112
    )
