"""Shared poll subscriptions against a real aiohttp back end on loopback.

The back end speaks Centrifugo v6's shared poll refresh proxy format; the
clients speak the protocol the centrifuge SDK uses (`type: 4` subscribe,
`sub_refresh` `type: 1` track / `type: 2` untrack).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.core.conftest import OPEN, Conn, make_settings, settle_client
from tests.polling import until
from tidings.api.methods import ServerApi
from tidings.core.node import Node
from tidings.core.shared_poll import sign
from tidings.errors import ReplyError

SECRET = "shared-poll-secret"


@dataclass
class Backend:
    """The application's back end: key -> (version, data); records every request."""

    values: dict[str, tuple[int, Any]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "ok"
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.calls.append(body)
        if self.mode == "down":
            return web.Response(status=503, text="down")
        if self.mode == "slow":
            await asyncio.sleep(2)
        if self.mode == "garbage":
            return web.Response(body=b'{"result": {"items": [{"key": 5}]}', content_type="text/x")
        if self.mode == "huge":
            resp = web.StreamResponse()
            await resp.prepare(request)
            for _ in range(40):
                await resp.write(b" " * (1024 * 1024))
            return resp
        if self.mode == "error":
            return web.json_response({"error": {"code": 1000, "message": "nope"}})
        items = []
        for item in body["items"]:
            key = item["key"]
            if key in self.values:
                version, data = self.values[key]
                if data is None:
                    items.append({"key": key, "removed": True})
                else:
                    items.append({"key": key, "version": version, "data": data})
        return web.json_response({"result": {"items": items}})


@asynccontextmanager
async def running_backend() -> AsyncIterator[Backend]:
    """A `Backend` served by aiohttp on a free loopback port."""
    state = Backend()
    app = web.Application()
    app.router.add_post("/poll", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    state.url = f"http://127.0.0.1:{port}/poll"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    async with running_backend() as state:
        yield state


@pytest.fixture
async def node(backend: Backend) -> AsyncIterator[Node]:
    ns = {
        **OPEN,
        "history_size": 0,
        "history_ttl": 0,
        "presence": False,
        "join_leave": False,
        "subscription_type": "shared_poll",
        "shared_poll_endpoint": backend.url,
        "shared_poll_refresh_interval": "20ms",
        "shared_poll_timeout": "300ms",
        "shared_poll_max_keys_per_connection": 50,
    }
    created = Node(
        make_settings(
            shared_poll_hmac_secret_key=SECRET,
            namespaces={
                "sp": ns,
                "sp2": dict(ns),
                "few": {**ns, "shared_poll_refresh_batch_size": 2},
                "ver": {**ns, "shared_poll_mode": "versioned"},
                "pub": {
                    **ns,
                    "shared_poll_mode": "versioned",
                    "shared_poll_publish_enabled": True,
                    "shared_poll_refresh_interval": "1h",  # updates come by publish only
                },
                # Polled at once when a key is tracked first, otherwise hardly ever.
                "cold": {**ns, "shared_poll_refresh_interval": "1h"},
                "exp": {**ns, "shared_poll_track_expired_extra_delay": "50ms"},
                "plain": OPEN,
            },
        )
    )
    yield created
    await created.stop()


async def tracker(node: Node, user: str, channel: str, keys: list[str]) -> Conn:
    c, _ = await tracker_with_reply(node, user, channel, keys)
    return c


async def tracker_with_reply(
    node: Node, user: str, channel: str, keys: list[str]
) -> tuple[Conn, list[dict[str, Any]]]:
    """A tracker of `keys`, and the current data its track reply carried (known keys)."""
    c = Conn(node)
    await c.connect(user)
    reply = await c.call({"id": 2, "subscribe": {"channel": channel, "type": 4}})
    assert reply["subscribe"]["type"] == 4, reply
    # Versionless: the node's epoch; versioned: the publisher's, none before it speaks.
    assert bool(reply["subscribe"].get("epoch")) != channel.startswith(("ver:", "pub:")), reply
    known: list[dict[str, Any]] = []
    if keys:
        track = await c.call({"id": 3, "sub_refresh": track_request(user, channel, keys)})
        assert "error" not in track, track
        known = track["sub_refresh"].get("items", [])
    return c, known


def track_request(user: str, channel: str, keys: list[str], **override: Any) -> dict[str, Any]:
    sig = sign(SECRET, user, channel, keys, iat=int(time.time()), expiry=int(time.time()) + 60)
    batch = {"signature": override.get("signature", sig), "items": [{"key": k} for k in keys]}
    return {"channel": channel, "type": 1, "track": [batch]}


async def pushes(c: Conn, count: int) -> list[dict[str, Any]]:
    # A cold key is polled at once: its data may have come with the last call's reply.
    got: list[dict[str, Any]] = [m["push"]["pub"] for m in c.pushes if "pub" in m.get("push", {})]
    c.pushes = []
    async with asyncio.timeout(5):
        while len(got) < count:
            await asyncio.sleep(0.01)
            await settle_client(c.client)
            got += [m["push"]["pub"] for m in c.transport.take() if "push" in m]
    return got


async def test_one_poll_per_channel_whatever_the_subscribers(node: Node, backend: Backend) -> None:
    backend.values = {"a": (1, {"p": 1}), "b": (1, {"p": 2})}
    conns = [await tracker_with_reply(node, f"u{i}", "sp:q", ["a", "b"]) for i in range(20)]
    await tracker(node, "other", "sp2:q", ["a"])
    await until(lambda: node.shared_polls.polls("sp:q") >= 5)
    polls = node.shared_polls.polls("sp:q") + node.shared_polls.polls("sp2:q")
    # Every request names one channel and each tracked key once (a poll of each
    # channel may be on its way to the back end: counted, not yet received).
    assert polls - 2 <= len(backend.calls) <= polls
    for call in backend.calls:
        keys = [item["key"] for item in call["items"]]
        assert len(keys) == len(set(keys))
        assert call["channel"] in ("sp:q", "sp2:q")
    per_channel = [c for c in backend.calls if c["channel"] == "sp:q"]
    assert abs(len(per_channel) - node.shared_polls.polls("sp:q")) <= 1
    # Every tracker got each key once (first version seen): pushed, or in its track
    # reply when a poll had already seen it.
    for c, known in conns[:3]:
        got = known + await pushes(c, 2 - len(known))
        assert sorted((p["key"], p["data"]["p"], p["version"]) for p in got) == [
            ("a", 1, 1),
            ("b", 2, 1),
        ]


async def test_changes_pushed_to_trackers_only(node: Node, backend: Backend) -> None:
    backend.values = {"a": (1, "one"), "b": (1, "bee")}
    ca = await tracker(node, "ua", "sp:x", ["a"])
    cb = await tracker(node, "ub", "sp:x", ["b"])
    assert [p["key"] for p in await pushes(ca, 1)] == ["a"]
    assert [p["key"] for p in await pushes(cb, 1)] == ["b"]
    backend.values["a"] = (2, "two")
    got = await pushes(ca, 1)
    assert [(p["key"], p["data"], p["version"]) for p in got] == [("a", "two", 2)]
    backend.values["a"] = (3, None)  # removed
    assert (await pushes(ca, 1))[0].get("removed") is True
    await settle_client(cb.client)
    assert [m for m in cb.transport.take() if "push" in m] == []
    # A late tracker gets the current data in the track reply.
    backend.values["b"] = (5, "five")
    await pushes(cb, 1)
    late = Conn(node)
    await late.connect("late")
    await late.call({"id": 2, "subscribe": {"channel": "sp:x", "type": 4}})
    reply = await late.call({"id": 3, "sub_refresh": track_request("late", "sp:x", ["b"])})
    assert [(p["key"], p["data"]) for p in reply["sub_refresh"]["items"]] == [("b", "five")]


async def test_batches_of_refresh_batch_size(node: Node, backend: Backend) -> None:
    await tracker(node, "u", "few:x", ["k1", "k2", "k3", "k4", "k5"])
    await until(lambda: node.shared_polls.polls("few:x") >= 2)
    assert max(len(c["items"]) for c in backend.calls) == 2


@pytest.mark.parametrize("mode", ["down", "slow", "garbage", "huge", "error"])
async def test_bad_back_end_costs_only_updates(
    node: Node, backend: Backend, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend.values = {"a": (1, "one")}
    c = await tracker(node, "u", "sp:bad", ["a"])
    await pushes(c, 1)
    backend.mode = mode
    backend.values["a"] = (2, "two")
    calls = len(backend.calls)
    with caplog.at_level(logging.WARNING, logger="tidings.core.shared_poll"):
        await until(lambda: len(backend.calls) >= calls + 3, within=15)
    warnings = [r for r in caplog.records if "shared poll of 'sp:bad'" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert c.closed_with is None and "sp:bad" in c.client.subscriptions
    await settle_client(c.client)
    assert [m for m in c.transport.take() if "push" in m] == []
    # Other clients are unaffected: the connection still answers.
    assert "pong" not in (await c.call({"id": 9, "ping": {}})).get("error", {})
    backend.mode = "ok"
    assert [(p["key"], p["data"]) for p in await pushes(c, 1)] == [("a", "two")]


async def test_polling_stops_when_the_last_tracker_leaves(node: Node, backend: Backend) -> None:
    c1 = await tracker(node, "u1", "sp:stop", ["a"])
    c2 = await tracker(node, "u2", "sp:stop", ["a"])
    await until(lambda: node.shared_polls.polls("sp:stop") >= 2)
    await c1.call({"id": 5, "unsubscribe": {"channel": "sp:stop"}})
    polls = node.shared_polls.polls("sp:stop")
    await until(lambda: node.shared_polls.polls("sp:stop") >= polls + 2)
    await c2.call({"id": 5, "sub_refresh": {"channel": "sp:stop", "type": 2, "untrack": ["a"]}})
    await until(lambda: not node.shared_polls.polling("sp:stop"))
    calls = len(backend.calls)
    await asyncio.sleep(0.1)
    assert len(backend.calls) == calls


async def test_refusals(node: Node, backend: Backend) -> None:
    c = await tracker(node, "u", "sp:r", [])
    forged = track_request("u", "sp:r", ["a"], signature="1:2:00")
    assert (await c.call({"id": 4, "sub_refresh": forged}))["error"]["code"] == 103
    other_user = track_request("mallory", "sp:r", ["a"])
    assert (await c.call({"id": 5, "sub_refresh": other_user}))["error"]["code"] == 103
    expired = {
        "channel": "sp:r",
        "type": 1,
        "track": [
            {
                "signature": sign(SECRET, "u", "sp:r", ["a"], iat=1, expiry=2),
                "items": [{"key": "a"}],
            }
        ],
    }
    assert (await c.call({"id": 6, "sub_refresh": expired}))["error"]["code"] == 103
    many = track_request("u", "sp:r", [f"k{i}" for i in range(51)])
    assert (await c.call({"id": 7, "sub_refresh": many}))["error"]["code"] == 106
    huge_version = track_request("u", "sp:r", ["a"])
    huge_version["track"][0]["items"][0]["version"] = 2**64 + 1
    reply = await c.call({"id": 8, "sub_refresh": huge_version})
    assert reply.get("error", {}).get("code") == 107 or c.closed_with is not None
    plain = Conn(node)
    await plain.connect("p")
    assert (await plain.call({"id": 2, "subscribe": {"channel": "sp:r"}}))["error"]["code"] == 103
    assert json.dumps(backend.calls)  # no request was made for refused keys
    assert all(item["key"] != "k0" for call in backend.calls for item in call["items"])


async def test_versionless_asks_for_keys_and_versioned_for_versions(
    node: Node, backend: Backend
) -> None:
    """Versionless (default): keys only, changes found by data; versioned: versions sent."""
    backend.values = {"a": (0, "one")}
    free = await tracker(node, "u", "sp:m", ["a"])
    assert [(p["data"], p["version"]) for p in await pushes(free, 1)] == [("one", 1)]
    backend.values["a"] = (0, "two")
    assert [(p["data"], p["version"]) for p in await pushes(free, 1)] == [("two", 2)]
    assert all("version" not in item for c in backend.calls for item in c["items"])

    backend.values = {"a": (4, "four")}
    versioned = await tracker(node, "u", "ver:m", ["a"])
    assert [p["version"] for p in await pushes(versioned, 1)] == [4]
    await until(lambda: any(c["items"] == [{"key": "a", "version": 4}] for c in backend.calls))
    backend.values["a"] = (0, "no version")  # versioned: not above 4, so not a change
    calls = len(backend.calls)
    await until(lambda: len(backend.calls) > calls + 2)
    await settle_client(versioned.client)
    assert [m for m in versioned.transport.take() if "push" in m] == []


async def call_api(node: Node, method: str, body: dict[str, Any]) -> Any:
    api = ServerApi(node)
    return await api.call(method, api.decode(method, json.dumps(body).encode()))


async def test_shared_poll_publish_reaches_trackers_of_the_key(
    node: Node, backend: Backend
) -> None:
    ca = await tracker(node, "ua", "pub:q", ["a"])
    cb = await tracker(node, "ub", "pub:q", ["b"])
    await call_api(
        node,
        "shared_poll_publish",
        {"channel": "pub:q", "key": "a", "version": 3, "data": {"p": 3}},
    )
    got = await pushes(ca, 1)
    assert [(p["key"], p["data"], p["version"]) for p in got] == [("a", {"p": 3}, 3)]
    # Not newer than what the trackers have: nothing is pushed.
    await call_api(
        node, "shared_poll_publish", {"channel": "pub:q", "key": "a", "version": 2, "data": 2}
    )
    b64 = {"channel": "pub:q", "key": "a", "version": 5, "b64data": "WzVd"}
    await call_api(node, "shared_poll_publish", b64)
    assert [(p["data"], p["version"]) for p in await pushes(ca, 1)] == [([5], 5)]
    await settle_client(cb.client)
    assert [m for m in cb.transport.take() if "push" in m] == []
    # A late tracker gets the published data in its track reply.
    late = Conn(node)
    await late.connect("late")
    await late.call({"id": 2, "subscribe": {"channel": "pub:q", "type": 4}})
    reply = await late.call({"id": 3, "sub_refresh": track_request("late", "pub:q", ["a"])})
    assert [(p["key"], p["data"]) for p in reply["sub_refresh"]["items"]] == [("a", [5])]


@pytest.mark.parametrize(
    "body, code",
    [
        ({"channel": "pub:q", "key": "a", "data": 1}, 107),  # no version
        ({"channel": "pub:q", "key": "", "version": 1, "data": 1}, 107),
        ({"channel": "", "key": "a", "version": 1, "data": 1}, 107),
        ({"channel": "nons:q", "key": "a", "version": 1, "data": 1}, 102),
        ({"channel": "plain:q", "key": "a", "version": 1, "data": 1}, 107),
        ({"channel": "sp:q", "key": "a", "version": 1, "data": 1}, 108),  # not enabled
        ({"channel": "pub:q", "key": "a", "version": 2**63, "data": 1}, 107),
        ({"channel": "pub:q", "key": "a", "version": 1, "b64data": "@@"}, 107),
    ],
)
async def test_shared_poll_publish_errors_are_centrifugos(
    node: Node, body: dict[str, Any], code: int
) -> None:
    with pytest.raises(ReplyError) as info:
        await call_api(node, "shared_poll_publish", body)
    assert info.value.code == code


async def test_a_new_publisher_epoch_makes_trackers_start_over(node: Node) -> None:
    c = await tracker(node, "ua", "pub:e", ["a"])
    first = {"channel": "pub:e", "key": "a", "version": 7, "data": 1, "epoch": "e1"}
    await call_api(node, "shared_poll_publish", first)
    assert [(p["version"], p["epoch"]) for p in await pushes(c, 1)] == [(7, "e1")]
    # Another epoch: versions of the old one mean nothing, the tracker is sent back.
    await call_api(node, "shared_poll_publish", first | {"version": 1, "epoch": "e2"})
    async with asyncio.timeout(5):
        while True:
            await settle_client(c.client)
            unsubs = [m["push"]["unsubscribe"] for m in c.transport.take() if "push" in m]
            if unsubs:
                break
            await asyncio.sleep(0.01)
    assert unsubs[0]["code"] == 2500
    assert "pub:e" not in c.client.subscriptions


async def test_a_cold_key_is_polled_at_once(node: Node, backend: Backend) -> None:
    """As Centrifugo's cold key notification: no wait for the next refresh (1 h here)."""
    backend.values = {"a": (1, "one"), "b": (1, "bee"), "c": (1, "sea")}
    c = await tracker(node, "u", "cold:x", ["a", "b"])
    assert sorted(p["key"] for p in await pushes(c, 2)) == ["a", "b"]
    assert [sorted(i["key"] for i in call["items"]) for call in backend.calls] == [["a", "b"]]
    # A second tracker of a warm key gets it in its reply, without a back end call.
    _, known = await tracker_with_reply(node, "v", "cold:x", ["a"])
    assert [(p["key"], p["data"]) for p in known] == [("a", "one")]
    assert len(backend.calls) == 1
    # A key new to the channel is polled alone.
    reply = await c.call({"id": 4, "sub_refresh": track_request("u", "cold:x", ["a", "c"])})
    assert "error" not in reply
    assert [p["key"] for p in await pushes(c, 1)] == ["c"]
    assert [i["key"] for i in backend.calls[-1]["items"]] == ["c"]


async def test_a_track_reply_says_when_its_signature_expires(node: Node) -> None:
    c = await tracker(node, "u", "cold:t", [])
    now = int(time.time())
    batches = [
        {
            "signature": sign(SECRET, "u", "cold:t", [k], iat=now, expiry=now + ttl),
            "items": [{"key": k}],
        }
        for k, ttl in (("a", 600), ("b", 90))
    ]
    reply = await c.call(
        {"id": 4, "sub_refresh": {"channel": "cold:t", "type": 1, "track": batches}}
    )
    result = reply["sub_refresh"]
    assert result["expires"] is True and 80 <= result["ttl"] <= 90  # the earliest one
    forever = sign(SECRET, "u", "cold:t", ["z"], iat=now, expiry=0)
    track = {"signature": forever, "items": [{"key": "z"}]}
    reply = await c.call(
        {"id": 5, "sub_refresh": {"channel": "cold:t", "type": 1, "track": [track]}}
    )
    assert "expires" not in reply["sub_refresh"]


async def test_an_expired_track_is_dropped_after_the_extra_delay(
    node: Node, backend: Backend
) -> None:
    """Centrifugo's track_expired_extra_delay: untracked silently unless tracked anew."""
    backend.values = {"old": (1, "o"), "kept": (1, "k"), "fresh": (1, "f")}
    c = await tracker(node, "u", "exp:x", ["fresh"])
    now = int(time.time())
    for key in ("old", "kept"):
        # Expired a second ago: still within the accepted clock skew, so tracked.
        signed = sign(SECRET, "u", "exp:x", [key], iat=now - 60, expiry=now - 1)
        track = {"signature": signed, "items": [{"key": key}]}
        req = {"channel": "exp:x", "type": 1, "track": [track]}
        assert "error" not in await c.call({"id": 4, "sub_refresh": req})
    # "kept" is tracked again with a fresh signature (what the SDK does at the ttl).
    assert "error" not in await c.call(
        {"id": 5, "sub_refresh": track_request("u", "exp:x", ["kept"])}
    )

    def asked() -> set[str]:
        return {i["key"] for i in backend.calls[-1]["items"]}

    await until(lambda: asked() == {"fresh", "kept"})
    await settle_client(c.client)
    c.transport.take()  # the first data of the three keys
    c.pushes = []
    backend.values["old"] = (2, "changed")
    backend.values["kept"] = (2, "changed")
    got: list[dict[str, Any]] = []
    while ("kept", "changed") not in [(p["key"], p["data"]) for p in got]:
        got += await pushes(c, 1)
    calls = len(backend.calls)
    await until(lambda: len(backend.calls) >= calls + 2)  # more polls: "old" stays quiet
    await settle_client(c.client)
    got += [m["push"]["pub"] for m in c.transport.take() if "push" in m]
    assert "old" not in {p["key"] for p in got}  # neither its data nor a removal


async def test_a_subscriber_may_track_again_after_polling_stopped(
    node: Node, backend: Backend
) -> None:
    backend.values = {"a": (1, "one")}
    c = await tracker(node, "u", "sp:again", ["a"])
    await pushes(c, 1)
    await c.call({"id": 4, "sub_refresh": {"channel": "sp:again", "type": 2, "untrack": ["a"]}})
    await until(lambda: not node.shared_polls.polling("sp:again"))
    reply = await c.call({"id": 5, "sub_refresh": track_request("u", "sp:again", ["a"])})
    assert "error" not in reply, reply
    backend.values["a"] = (2, "two")
    got: list[dict[str, Any]] = []
    while ("a", "two") not in [(p["key"], p["data"]) for p in got]:
        got += await pushes(c, 1)
    stream = await c.call({"id": 6, "sub_refresh": {"channel": "plain", "type": 1, "track": []}})
    assert stream["error"]["code"] == 103  # not a shared poll subscription
