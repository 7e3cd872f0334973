"""Map subscriptions through the client protocol, as the centrifuge SDK drives them.

The SDK (centrifuge 5.8 `_buildMapSubscribeCommand`) sends `type: 1` with
`phase: 2` (state pages, `cursor`, `limit`), then `phase: 1` (stream, with
the first page's `offset`/`epoch`) until the server answers `phase: 0`.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import pytest

from tidings.core.node import Node
from tidings.protocol.centrifuge import codes

from .conftest import OPEN, Conn, settle, token

MAP_NS: dict[str, Any] = {
    **OPEN,
    "history_size": 0,
    "history_ttl": 0,
    "presence": False,
    "join_leave": False,
    "subscription_type": "map",
    "map_stream_size": 100,
    "map_stream_ttl": "60s",
}


@pytest.fixture
def node(node_factory: Callable[..., Node]) -> Node:
    return node_factory(
        namespaces={
            "m": MAP_NS,
            "eph": {**MAP_NS, "map_stream_size": 0, "map_stream_ttl": 0},
            "small": {**MAP_NS, "map_stream_size": 3},
        }
    )


async def subscribe_map(c: Conn, channel: str, limit: int = 0, **extra: Any) -> dict[str, Any]:
    """Drive the phases as the SDK does; return the live result plus gathered state."""
    state: list[dict[str, Any]] = []
    stream: list[dict[str, Any]] = []
    req: dict[str, Any] = {"channel": channel, "type": 1, "phase": 2, "flag": 1, **extra}
    if limit:
        req["limit"] = limit
    first: dict[str, Any] | None = None
    cid = 10
    for _ in range(1000):
        cid += 1
        reply = await c.call({"id": cid, "subscribe": req})
        assert "error" not in reply, reply
        res = reply["subscribe"]
        state += res.get("state", [])
        stream += res.get("publications", [])
        if not res.get("phase"):
            res["_state"], res["_stream"] = state, stream
            return res
        if first is None and res["phase"] == 2:
            first = res
        if res["phase"] == 2 and res.get("cursor"):
            req = {**req, "cursor": res["cursor"], "offset": first["offset"]}
            req["epoch"] = first.get("epoch", "")
        else:
            offset = res.get("offset", 0) if res["phase"] == 1 else first["offset"]  # type: ignore[index]
            req = {"channel": channel, "type": 1, "phase": 1, "flag": 1, "offset": offset}
            req["epoch"] = res.get("epoch", "")
            if limit:
                req["limit"] = limit
    raise AssertionError("map subscribe never went live")


def as_map(entries: list[dict[str, Any]], changes: list[dict[str, Any]]) -> dict[str, Any]:
    state = {e["key"]: e["data"] for e in entries}
    for change in changes:
        if change.get("removed"):
            state.pop(change["key"], None)
        else:
            state[change["key"]] = change["data"]
    return state


async def test_snapshot_then_live_updates(node: Node, conn: Callable[[], Conn]) -> None:
    for i in range(5):
        await node.maps.publish("m:game", f"p{i}", b'{"score":%d}' % i)
    c = conn()
    await c.connect()
    live = await subscribe_map(c, "m:game")
    assert live["type"] == 1 and live["recoverable"] and live["positioned"]
    assert as_map(live["_state"], live["_stream"]) == {f"p{i}": {"score": i} for i in range(5)}
    assert live["offset"] == 5 and live["epoch"]

    await node.maps.publish("m:game", "p1", b'{"score":100}')
    removed, _ = await node.maps.remove("m:game", "p2")
    assert removed
    await settle()
    pushes = c.transport.take()
    pubs = [p["push"]["pub"] for p in pushes if "push" in p]
    assert [(p["key"], p.get("removed", False), p["offset"]) for p in pubs] == [
        ("p1", False, 6),
        ("p2", True, 7),
    ]
    assert pubs[0]["data"] == {"score": 100}


async def test_paginated_snapshot_with_writes_between_pages(
    node: Node, conn: Callable[[], Conn]
) -> None:
    for i in range(250):
        await node.maps.publish("m:big", f"k{i:03d}", b"%d" % i)
    c = conn()
    await c.connect()
    # First page by hand, then writes, then the rest.
    first = await c.call(
        {"id": 2, "subscribe": {"channel": "m:big", "type": 1, "phase": 2, "limit": 100}}
    )
    res = first["subscribe"]
    assert res["phase"] == 2 and len(res["state"]) == 100 and res["cursor"] == "k099"
    await node.maps.publish("m:big", "k000", b'"changed"')
    await node.maps.remove("m:big", "k200")
    await node.maps.publish("m:big", "zzz", b'"new"')
    state = list(res["state"])
    req = {
        "channel": "m:big",
        "type": 1,
        "phase": 2,
        "limit": 100,
        "cursor": res["cursor"],
        "offset": res["offset"],
        "epoch": res["epoch"],
    }
    stream: list[dict[str, Any]] = []
    for cid in range(3, 20):
        reply = (await c.call({"id": cid, "subscribe": req}))["subscribe"]
        state += reply.get("state", [])
        stream += reply.get("publications", [])
        if not reply.get("phase"):
            break
        req = {**req, "cursor": reply["cursor"]}
    else:
        raise AssertionError("never live")
    got = as_map(state, stream)
    expected: dict[str, Any] = {f"k{i:03d}": i for i in range(250) if i != 200}
    expected |= {"k000": "changed", "zzz": "new"}
    assert got == expected


async def test_recovery_after_reconnect_includes_removals(
    node: Node, conn: Callable[[], Conn]
) -> None:
    await node.maps.publish("m:r", "a", b"1")
    await node.maps.publish("m:r", "b", b"2")
    c = conn()
    await c.connect()
    live = await subscribe_map(c, "m:r")
    position = (live["offset"], live["epoch"])
    c.client.disconnect(codes.FORCE_RECONNECT)
    await settle()
    await node.maps.publish("m:r", "c", b"3")
    await node.maps.remove("m:r", "a")
    again = conn()
    await again.connect()
    req = {"channel": "m:r", "type": 1, "phase": 1, "flag": 1, "recover": True}
    req |= {"offset": position[0], "epoch": position[1]}
    res = (await again.call({"id": 5, "subscribe": req}))["subscribe"]
    assert res.get("phase", 0) == 0 and res["recovered"] and res["was_recovering"]
    assert [(p["key"], p.get("removed", False)) for p in res["publications"]] == [
        ("c", False),
        ("a", True),
    ]


async def test_unrecoverable_position_is_error_112(node: Node, conn: Callable[[], Conn]) -> None:
    assert (await node.maps.remove("small:x", "none"))[0] is False
    pos = await node.maps.publish("small:x", "a", b"1")
    for i in range(5):
        await node.maps.publish("small:x", "a", b"%d" % i)
    c = conn()
    await c.connect()
    req = {"channel": "small:x", "type": 1, "phase": 1, "recover": True}
    req |= {"offset": pos.offset, "epoch": pos.epoch}
    reply = await c.call({"id": 3, "subscribe": req})
    assert reply["error"]["code"] == 112
    bad_epoch = {**req, "epoch": "nope", "offset": 6}
    assert (await c.call({"id": 4, "subscribe": bad_epoch}))["error"]["code"] == 112
    assert "small:x" not in c.client.subscriptions
    # A fresh snapshot still works.
    live = await subscribe_map(c, "small:x")
    assert as_map(live["_state"], live["_stream"]) == {"a": 4}


async def test_streamless_map_is_not_recoverable(node: Node, conn: Callable[[], Conn]) -> None:
    await node.maps.publish("eph:x", "a", b"1")
    c = conn()
    await c.connect()
    live = await subscribe_map(c, "eph:x")
    assert not live.get("recoverable") and as_map(live["_state"], []) == {"a": 1}


async def test_client_map_publish_and_remove(node: Node, conn: Callable[[], Conn]) -> None:
    watcher, writer = conn(), conn()
    await watcher.connect("w")
    await writer.connect("p")
    await subscribe_map(watcher, "m:shared")
    put = {"channel": "m:shared", "type": 1, "key": "cursor", "data": {"x": 1}}
    assert "error" not in await writer.call({"id": 3, "publish": put})
    rm = {"channel": "m:shared", "type": 1, "key": "cursor", "removed": True}
    assert "error" not in await writer.call({"id": 4, "publish": rm})
    await settle()
    pubs = [p["push"]["pub"] for p in watcher.transport.take() if "push" in p]
    assert [(p["key"], p.get("removed", False)) for p in pubs] == [
        ("cursor", False),
        ("cursor", True),
    ]
    assert pubs[0]["info"]["user"] == "p"
    no_key = {"channel": "m:shared", "type": 1, "data": {"x": 1}}
    assert (await writer.call({"id": 5, "publish": no_key}))["error"]["code"] == 107


async def test_stream_subscribe_to_map_channel_is_refused(
    node: Node, conn: Callable[[], Conn]
) -> None:
    c = conn()
    await c.connect()
    assert (await c.subscribe("m:x"))["error"]["code"] == 103  # Centrifugo's answer
    as_map_elsewhere = {"channel": "plain", "type": 1, "phase": 2}
    assert (await c.call({"id": 3, "subscribe": as_map_elsewhere}))["error"]["code"] == 103
    bad_phase = {"channel": "m:x", "type": 1, "phase": 7}
    assert (await c.call({"id": 4, "subscribe": bad_phase}))["error"]["code"] == 107


async def test_huge_snapshot_pages_stay_within_the_outbox(
    node: Node, conn: Callable[[], Conn]
) -> None:
    blob = b'"' + base64.b64encode(b"x" * 30_000) + b'"'
    for i in range(200):
        await node.maps.publish("m:huge", f"k{i:03d}", blob)
    c = conn()
    await c.connect()
    limit = c.client.outbox.limit
    assert 200 * len(blob) > limit  # the snapshot cannot come in one reply
    first = await c.call(
        {"id": 3, "subscribe": {"channel": "m:huge", "type": 1, "phase": 2, "limit": 1000}}
    )
    page = first["subscribe"]
    assert 0 < len(page["state"]) < 200 and page["cursor"]
    assert len(page["state"]) * len(blob) <= limit
    live = await subscribe_map(c, "m:huge", limit=1000)
    assert len(as_map(live["_state"], live["_stream"])) == 200
    assert c.closed_with is None


async def test_expired_keys_are_pushed_as_removals(
    node_factory: Callable[..., Node], conn: Callable[[], Conn]
) -> None:
    node = node_factory(namespaces={"t": {**MAP_NS, "map_key_ttl": "1ms"}})
    c = Conn(node)
    await c.connect()
    await node.maps.publish("t:x", "gone", b"1")
    await subscribe_map(c, "t:x")
    await asyncio.sleep(0.01)
    await node.maps.sweep()
    await settle()
    pubs = [p["push"]["pub"] for p in c.transport.take() if "push" in p]
    assert [(p["key"], p.get("removed")) for p in pubs] == [("gone", True)]


async def test_thousands_of_odd_keys_through_the_protocol(
    node: Node, conn: Callable[[], Conn]
) -> None:
    keys = [f"ключ {i} {{x}}\t\u2603/{i}" for i in range(3000)]
    for i, key in enumerate(keys):
        await node.maps.publish("m:many", key, b"%d" % i)
    c = conn()
    await c.connect()
    live = await subscribe_map(c, "m:many", limit=1000)
    assert as_map(live["_state"], live["_stream"]) == {k: i for i, k in enumerate(keys)}


@pytest.mark.parametrize(
    ("extra", "outcome"),
    [
        ({"phase": 1, "offset": 2**64, "epoch": "x"}, 107),
        ({"phase": 1, "offset": -1}, 107),
        ({"phase": 2, "limit": -5}, 107),
        ({"phase": 2, "limit": 2**40}, 0),  # capped at the largest page
        ({"phase": 2, "cursor": "\\udcff"}, 3501),  # not UTF-8: the frame is refused
        ({"phase": 2**40}, 107),
    ],
)
async def test_hostile_subscribe_fields(
    node: Node, conn: Callable[[], Conn], extra: dict[str, Any], outcome: int
) -> None:
    await node.maps.publish("m:h", "a", b"1")
    c = conn()
    await c.connect()
    frame = (
        b'{"id": 3, "subscribe": {"channel": "m:h", "type": 1, %s}}'
        % ", ".join(
            f'"{k}": {v if isinstance(v, int) else chr(34) + v + chr(34)}' for k, v in extra.items()
        ).encode()
    )
    replies = await c.send(frame)
    reply = next((r for r in replies if r.get("id") == 3), None)
    if outcome == 0:
        assert reply is not None and "subscribe" in reply
    elif outcome < 1000:
        assert reply is not None and reply["error"]["code"] == outcome
    else:
        assert c.closed_with == outcome
    # Either way the node and other clients go on.
    other = conn()
    await other.connect("o")
    live = await subscribe_map(other, "m:h")
    assert as_map(live["_state"], []) == {"a": 1}


async def test_subscription_token_expiry_applies_to_map_subscriptions(
    node: Node, conn: Callable[[], Conn]
) -> None:
    c = conn()
    await c.connect("u1")
    live = await subscribe_map(c, "m:tok", token=token("u1", ttl=100, channel="m:tok"))
    assert live["expires"] is True and 0 < live["ttl"] <= 100


async def test_a_tags_filter_is_refused_as_centrifugo_does(
    node: Node, conn: Callable[[], Conn]
) -> None:
    """No namespace allows tags filters here: 107, not unfiltered data (Centrifugo's default)."""
    c = conn()
    await c.connect("u")
    tf = {"key": "team", "cmp": "eq", "val": "red"}
    for cid, req in enumerate(
        [
            {"channel": "m:tf", "type": 1, "phase": 2, "tf": tf},
            {"channel": "plain", "tf": tf},
        ],
        start=40,
    ):
        assert (await c.call({"id": cid, "subscribe": req}))["error"]["code"] == 107
