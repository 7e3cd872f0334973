"""The official Python SDK (centrifuge-python) against a real `tidings serve` process.

Everything here goes through the real wire: the SDK over WebSocket, and the
server API through the `cent` package. Tests marked `@by_encoding` run once with
the SDK's JSON encoding and once with protobuf (`use_protobuf`); the tests only
protobuf has are in test_protobuf.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from cent import (
    AsyncClient,
    ChannelsRequest,
    Disconnect,
    DisconnectRequest,
    PresenceStatsRequest,
    PublishRequest,
    RefreshRequest,
    SubscribeRequest,
    UnsubscribeRequest,
)
from centrifuge import (
    ClientState,
    ReplyError,
    StreamPosition,
    SubscriptionState,
)

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.sdk import TIMEOUT, Conn, connecting, loads

by_encoding = pytest.mark.parametrize("encoding", ["json", "protobuf"])


@pytest.fixture
async def connect(server: ServerProcess) -> AsyncIterator[Callable[..., Any]]:
    """`await connect(user, srv=None, **client_kwargs)` -> a connected Conn."""
    async with connecting(server) as factory:
        yield factory


def datas(pubs: list[Any]) -> list[Any]:
    return [ctx.pub.data for ctx in pubs]


def in_encoding(encoding: str) -> dict[str, Any]:
    """The SDK options for `encoding` ("protobuf": the centrifuge-protobuf subprotocol)."""
    return {"use_protobuf": encoding == "protobuf"}


def as_json(encoding: str, data: Any) -> Any:
    """Publication data as JSON: protobuf clients receive the JSON's UTF-8 bytes."""
    return loads(data) if encoding == "protobuf" else data


# --- publications ------------------------------------------------------------------------


@by_encoding
async def test_api_publication_reaches_subscriber(
    server: ServerProcess, connect: Any, api: AsyncClient, encoding: str
) -> None:
    conn = await connect("alice", **in_encoding(encoding))
    assert conn.id
    sub, rec = await conn.subscribed("news")
    subscribed = rec.of("subscribed")[0]
    assert subscribed.recoverable is True
    assert subscribed.stream_position.offset == 0

    result = await api.publish(PublishRequest(channel="news", data={"hello": 1}))
    assert result.offset == 1
    assert result.epoch == subscribed.stream_position.epoch

    (ctx,) = await rec.wait("publication")
    assert as_json(encoding, ctx.pub.data) == {"hello": 1}
    assert ctx.pub.offset == 1
    assert sub.state == SubscriptionState.SUBSCRIBED


async def test_client_publish_reaches_other_client(connect: Any) -> None:
    alice = await connect("alice")
    bob = await connect("bob")
    _, alice_rec = await alice.subscribed("room")
    bob_sub, bob_rec = await bob.subscribed("room")

    await asyncio.wait_for(bob_sub.publish({"text": "hi from bob"}), TIMEOUT)

    (ctx,) = await alice_rec.wait("publication")
    assert ctx.pub.data == {"text": "hi from bob"}
    assert ctx.pub.info is not None
    assert ctx.pub.info.user == "bob"
    assert ctx.pub.info.client == bob.id
    # The publisher is a subscriber too, so it gets its own publication.
    (own,) = await bob_rec.wait("publication")
    assert own.pub.data == {"text": "hi from bob"}


@by_encoding
async def test_presence_counts_one_user_with_two_connections_once(
    connect: Any, api: AsyncClient, encoding: str
) -> None:
    first = await connect("carol", **in_encoding(encoding))
    second = await connect("carol")  # always JSON: in protobuf, mixed encodings share presence
    sub1, _ = await first.subscribed("lobby")
    await second.subscribed("lobby")

    stats = await asyncio.wait_for(sub1.presence_stats(), TIMEOUT)
    assert (stats.num_clients, stats.num_users) == (2, 1)
    presence = await asyncio.wait_for(sub1.presence(), TIMEOUT)
    assert set(presence.clients) == {first.id, second.id}
    assert {info.user for info in presence.clients.values()} == {"carol"}
    assert presence.clients[second.id].client == second.id

    await asyncio.wait_for(second.client.disconnect(), TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while True:
        api_stats = await api.presence_stats(PresenceStatsRequest(channel="lobby"))
        if (api_stats.num_clients, api_stats.num_users) == (1, 1):
            break
        assert time.monotonic() < deadline, f"presence still {api_stats}"
        await asyncio.sleep(0.1)


@by_encoding
async def test_history_limit_reverse_and_since(
    connect: Any, api: AsyncClient, encoding: str
) -> None:
    for i in range(1, 6):
        await api.publish(PublishRequest(channel="log", data={"n": i}))
    conn = await connect("dave", **in_encoding(encoding))
    sub, _ = await conn.subscribed("log")

    first_two = await asyncio.wait_for(sub.history(limit=2), TIMEOUT)
    assert [as_json(encoding, p.data)["n"] for p in first_two.publications] == [1, 2]
    assert [p.offset for p in first_two.publications] == [1, 2]
    assert first_two.offset == 5
    assert first_two.epoch

    last_two = await asyncio.wait_for(sub.history(limit=2, reverse=True), TIMEOUT)
    assert [as_json(encoding, p.data)["n"] for p in last_two.publications] == [5, 4]

    position_only = await asyncio.wait_for(sub.history(limit=0), TIMEOUT)
    assert position_only.publications == []
    assert (position_only.offset, position_only.epoch) == (5, first_two.epoch)

    since = StreamPosition(offset=3, epoch=first_two.epoch)
    after = await asyncio.wait_for(sub.history(limit=-1, since=since), TIMEOUT)
    assert [as_json(encoding, p.data)["n"] for p in after.publications] == [4, 5]

    bad_epoch = StreamPosition(offset=3, epoch="not-the-epoch")
    with pytest.raises(ReplyError) as err:
        await asyncio.wait_for(sub.history(limit=-1, since=bad_epoch), TIMEOUT)
    assert err.value.code == 112


@by_encoding
async def test_join_and_leave_seen_by_other_subscriber(connect: Any, encoding: str) -> None:
    watcher = await connect("erin", **in_encoding(encoding))
    _, rec = await watcher.subscribed("party", join_leave=True)
    guest = await connect("frank", **in_encoding(encoding))
    await guest.subscribed("party")

    (join,) = await rec.wait("join", lambda c: c.info.user == "frank")
    assert join.info.client == guest.id

    await asyncio.wait_for(guest.client.disconnect(), TIMEOUT)
    (leave,) = await rec.wait("leave", lambda c: c.info.user == "frank")
    assert leave.info.client == guest.id
    # As from Centrifugo, the watcher saw its own join first.
    assert rec.of("join")[0].info.client == watcher.id


# --- recovery ------------------------------------------------------------------------------


@by_encoding
@pytest.mark.parametrize("code", [3011, 4001])
async def test_recovery_after_server_side_disconnect(
    connect: Any, api: AsyncClient, code: int, encoding: str
) -> None:
    conn = await connect(
        "gina", min_reconnect_delay=1.5, max_reconnect_delay=3.0, **in_encoding(encoding)
    )
    _, rec = await conn.subscribed("stream")
    for i in range(2):
        await api.publish(PublishRequest(channel="stream", data={"n": i}))
    await rec.wait("publication", count=2)

    await api.disconnect(
        DisconnectRequest(user="gina", disconnect=Disconnect(code=code, reason="go away"))
    )
    (connecting,) = await conn.rec.wait("connecting", lambda c: c.code == code)
    assert connecting.reason == "go away"
    assert conn.client.state == ClientState.CONNECTING

    missed = 5
    for i in range(2, 2 + missed):
        await api.publish(PublishRequest(channel="stream", data={"n": i}))

    await conn.rec.wait("connected", count=2)
    (resubscribed,) = await rec.wait("subscribed", lambda c: c.was_recovering)
    assert resubscribed.recovered is True
    # As from Centrifugo: the offset asked from; the recovered publications follow.
    assert resubscribed.stream_position.offset == 2
    pubs = await rec.wait("publication", count=2 + missed)
    assert [as_json(encoding, c.pub.data)["n"] for c in pubs] == list(range(2 + missed))
    assert [c.pub.offset for c in pubs] == list(range(1, 3 + missed))
    # Exactly the missed ones: nothing delivered twice.
    await asyncio.sleep(0.3)
    assert len(rec.of("publication")) == 2 + missed


async def test_recovery_impossible_after_history_trimmed(server_factory: Any) -> None:
    srv = server_factory({"channel": {**OPEN_CHANNEL, "history_size": 2}})
    conn = Conn(srv, "hank", min_reconnect_delay=1.5, max_reconnect_delay=3.0)
    async with AsyncClient(srv.api_url, srv.api_key, timeout=TIMEOUT) as api:
        try:
            await asyncio.wait_for(conn.connect(), TIMEOUT)
            _, rec = await conn.subscribed("short")
            await api.publish(PublishRequest(channel="short", data={"n": 0}))
            await rec.wait("publication")

            await api.disconnect(
                DisconnectRequest(user="hank", disconnect=Disconnect(code=3011, reason="again"))
            )
            await conn.rec.wait("connecting", lambda c: c.code == 3011)
            for i in range(1, 6):
                await api.publish(PublishRequest(channel="short", data={"n": i}))

            (again,) = await rec.wait("subscribed", lambda c: c.was_recovering)
            assert again.recovered is False
            assert again.stream_position.offset == 6
            await asyncio.sleep(0.3)
            assert [c.pub.data["n"] for c in rec.of("publication")] == [0]

            # The stream goes on from the new position.
            await api.publish(PublishRequest(channel="short", data={"n": 6}))
            (_, latest) = await rec.wait("publication", count=2)
            assert (latest.pub.data, latest.pub.offset) == ({"n": 6}, 7)
        finally:
            await asyncio.wait_for(conn.client.disconnect(), 5)


async def test_terminal_disconnect_code_stops_the_sdk(connect: Any, api: AsyncClient) -> None:
    conn = await connect("ivan")
    await api.disconnect(DisconnectRequest(user="ivan"))
    (ctx,) = await conn.rec.wait("disconnected")
    assert ctx.code == 3503
    assert conn.client.state == ClientState.DISCONNECTED

    other = await connect("ivan")
    await api.disconnect(
        DisconnectRequest(user="ivan", disconnect=Disconnect(code=4501, reason="banned"))
    )
    (ctx,) = await other.rec.wait("disconnected")
    assert (ctx.code, ctx.reason) == (4501, "banned")
    await asyncio.sleep(0.5)
    assert other.client.state == ClientState.DISCONNECTED
    assert len(other.rec.of("connected")) == 1
    assert [c.code for c in other.rec.of("connecting")] == [0]  # only "connect called"


# --- server-side subscriptions ---------------------------------------------------------


async def test_api_subscribe_and_unsubscribe_reach_sdk(connect: Any, api: AsyncClient) -> None:
    conn = await connect("judy")
    await api.subscribe(SubscribeRequest(user="judy", channel="alerts", data={"why": "test"}))
    (ctx,) = await conn.rec.wait("subscribed", lambda c: c.channel == "alerts")
    assert ctx.data == {"why": "test"}
    assert ctx.recoverable is True

    await api.publish(PublishRequest(channel="alerts", data={"a": 1}))
    (pub,) = await conn.rec.wait("publication")
    assert (pub.channel, pub.pub.data) == ("alerts", {"a": 1})

    await api.unsubscribe(UnsubscribeRequest(user="judy", channel="alerts"))
    await conn.rec.wait("unsubscribed", lambda c: c.channel == "alerts")
    channels = await api.channels(ChannelsRequest())
    assert "alerts" not in channels.channels
    await api.publish(PublishRequest(channel="alerts", data={"a": 2}))
    await asyncio.sleep(0.3)
    assert len(conn.rec.of("publication")) == 1


async def test_api_unsubscribe_of_client_side_subscription(connect: Any, api: AsyncClient) -> None:
    conn = await connect("kate")
    sub, rec = await conn.subscribed("tv")
    await api.unsubscribe(UnsubscribeRequest(user="kate", channel="tv"))
    (ctx,) = await rec.wait("unsubscribed")
    assert ctx.code == 2000
    assert sub.state == SubscriptionState.UNSUBSCRIBED
    # The connection stays up.
    assert conn.client.state == ClientState.CONNECTED


async def test_token_channels_claim_subscribes_server_side(
    server: ServerProcess, connect: Any, api: AsyncClient
) -> None:
    token = server.token("leo", channels=["#leo", "updates"])
    conn = await connect("leo", token=token, min_reconnect_delay=1.0, max_reconnect_delay=2.0)
    subscribed = await conn.rec.wait("subscribed", count=2)
    assert {c.channel for c in subscribed} == {"#leo", "updates"}

    await api.publish(PublishRequest(channel="#leo", data={"to": "leo"}))
    (ctx,) = await conn.rec.wait("publication")
    assert (ctx.channel, ctx.pub.data) == ("#leo", {"to": "leo"})

    # Server-side subscriptions recover across a reconnect too.
    await api.disconnect(
        DisconnectRequest(user="leo", disconnect=Disconnect(code=3011, reason="bye"))
    )
    await conn.rec.wait("connecting", lambda c: c.code == 3011)
    await api.publish(PublishRequest(channel="updates", data={"missed": True}))
    again = await conn.rec.wait("subscribed", lambda c: c.channel == "updates", count=2)
    assert again[1].was_recovering is True
    assert again[1].recovered is True
    pubs = await conn.rec.wait("publication", count=2)
    assert (pubs[1].channel, pubs[1].pub.data) == ("updates", {"missed": True})


# --- errors ----------------------------------------------------------------------------------


async def test_unknown_namespace_is_102(connect: Any) -> None:
    conn = await connect("mia")
    sub, rec = conn.sub("nowhere:thing")
    await sub.subscribe()
    (ctx,) = await rec.wait("unsubscribed")
    assert ctx.code == 102
    assert sub.state == SubscriptionState.UNSUBSCRIBED
    with pytest.raises(ReplyError) as err:
        await asyncio.wait_for(conn.client.publish("nowhere:thing", {"x": 1}), TIMEOUT)
    assert err.value.code == 102


async def test_permission_denied_is_103(server_factory: Any) -> None:
    locked = {**OPEN_CHANNEL, "allow_subscribe_for_client": False}
    locked["allow_publish_for_client"] = False
    srv = server_factory({"channel": OPEN_CHANNEL, "namespaces": {"locked": locked}})
    conn = Conn(srv, "nick")
    try:
        await asyncio.wait_for(conn.connect(), TIMEOUT)
        sub, rec = conn.sub("locked:vault")
        await sub.subscribe()
        (ctx,) = await rec.wait("unsubscribed")
        assert ctx.code == 103
        with pytest.raises(ReplyError) as err:
            await asyncio.wait_for(conn.client.publish("locked:vault", {"x": 1}), TIMEOUT)
        assert err.value.code == 103
        # Channels without the namespace are still open to the same client.
        open_sub, open_rec = conn.sub("public")
        await open_sub.subscribe()
        await open_rec.wait("subscribed")
    finally:
        await asyncio.wait_for(conn.client.disconnect(), 5)


# --- refresh ---------------------------------------------------------------------------------


async def test_api_refresh_expired_makes_sdk_reconnect(connect: Any, api: AsyncClient) -> None:
    conn = await connect("olga", min_reconnect_delay=0.2, max_reconnect_delay=1.0)
    await api.refresh(RefreshRequest(user="olga", expired=True))
    (ctx,) = await conn.rec.wait("connecting", lambda c: c.code != 0)
    assert ctx.code == 3005
    # The token itself is still valid, so the SDK gets back in.
    await conn.rec.wait("connected", count=2)


async def test_api_refresh_expire_at_closes_connection_then(connect: Any, api: AsyncClient) -> None:
    conn = await connect("pete", min_reconnect_delay=0.2, max_reconnect_delay=1.0)
    await api.refresh(RefreshRequest(user="pete", expire_at=int(time.time()) + 3))
    await asyncio.sleep(0.5)
    assert conn.client.state == ClientState.CONNECTED
    (ctx,) = await conn.rec.wait("connecting", lambda c: c.code != 0)
    assert ctx.code == 3005


# --- shutdown --------------------------------------------------------------------------------


async def test_sigterm_disconnects_sdk_with_3001_and_exits_0(
    server: ServerProcess, connect: Any
) -> None:
    conn = await connect("quinn", min_reconnect_delay=5.0, max_reconnect_delay=10.0)
    await conn.subscribed("news")
    code = await asyncio.to_thread(server.stop, signal.SIGTERM, 20)
    assert code == 0, server.log()
    (ctx,) = await conn.rec.wait("connecting", lambda c: c.code != 0)
    assert ctx.code == 3001
    assert "shutting down" in server.log()


async def test_api_call_in_flight_during_sigterm_completes(
    server: ServerProcess, api: AsyncClient
) -> None:
    blob = "y" * 60_000
    for i in range(100):
        await api.publish(PublishRequest(channel="big", data={"n": i, "blob": blob}))
    body = json.dumps({"channel": "big", "limit": -1}).encode()
    head = (
        f"POST /api/history HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {server.api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    # A small receive window and a reader that waits: the ~6 MB answer cannot be
    # written at once, so the call is still in flight when SIGTERM arrives.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32_768)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.api_port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(head + body)
        await writer.drain()
        start = await asyncio.wait_for(reader.readexactly(1000), TIMEOUT)
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + TIMEOUT
        while "shutting down" not in server.log():
            assert time.monotonic() < deadline, server.log()
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert server.proc.poll() is None, "exited with a call in flight"
        response = start + await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    head_bytes, _, payload = response.partition(b"\r\n\r\n")
    assert head_bytes.startswith(b"HTTP/1.1 200 "), head_bytes
    result = json.loads(payload)["result"]
    assert [p["data"]["n"] for p in result["publications"]] == list(range(100))
    assert result["offset"] == 100
    assert await asyncio.to_thread(server.proc.wait, 20) == 0


async def test_publishes_in_flight_during_sigterm_are_stored_and_delivered(
    server_factory: Any,
) -> None:
    durable = {**OPEN_CHANNEL, "durable": True, "fsync": "always"}
    srv = server_factory({"channel": OPEN_CHANNEL, "namespaces": {"d": durable}})
    conn = Conn(srv, "rita", min_reconnect_delay=5.0, max_reconnect_delay=10.0)
    count = 1000
    commands = [{"publish": {"channel": "d:log", "data": {"n": i}}} for i in range(count)]
    try:
        await asyncio.wait_for(conn.connect(), TIMEOUT)
        _, rec = await conn.subscribed("d:log")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            call = asyncio.ensure_future(
                session.post(
                    f"{srv.api_url}/batch",
                    json={"commands": commands},
                    headers={"X-API-Key": srv.api_key},
                )
            )
            # The first publication arrived: the batch is running. Now stop the server.
            await rec.wait("publication")
            srv.proc.send_signal(signal.SIGTERM)
            async with await asyncio.wait_for(call, 30) as resp:
                assert resp.status == 200
                replies = (await resp.json())["replies"]
        assert [r["publish"]["offset"] for r in replies] == list(range(1, count + 1))
        # Everything published before the shutdown reached the subscriber, then 3001.
        (ctx,) = await conn.rec.wait("connecting", lambda c: c.code != 0)
        assert ctx.code == 3001
        assert [c.pub.data["n"] for c in rec.of("publication")] == list(range(count))
        assert await asyncio.to_thread(srv.proc.wait, 20) == 0
    finally:
        await asyncio.wait_for(conn.client.disconnect(), 5)
