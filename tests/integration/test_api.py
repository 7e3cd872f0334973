"""The server HTTP API through the `cent` package (and raw HTTP for the error bodies).

Connections that the API acts on are raw WebSocket clients speaking the JSON
protocol, so the pushes the API causes are checked as they are on the wire.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import websockets
from cent import (
    AsyncClient,
    BatchRequest,
    BroadcastRequest,
    CentApiResponseError,
    CentUnauthorizedError,
    ChannelsRequest,
    Disconnect,
    DisconnectRequest,
    HistoryRemoveRequest,
    HistoryRequest,
    InfoRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    RefreshRequest,
    StreamPosition,
    SubscribeRequest,
    UnsubscribeRequest,
)

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.sdk import TIMEOUT

#: A namespace without history or presence, to check the "off" answers.
BARE = {"allow_subscribe_for_client": True}


class WsClient:
    """A raw Centrifuge v2 JSON client: connect, subscribe, collect what arrives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._next_id = 0
        self.client_id = ""
        self.close_code: int | None = None
        self.close_reason = ""
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                for line in str(frame).split("\n"):
                    if not line.strip():
                        continue
                    message = json.loads(line)
                    if not message:  # a ping: answer with a pong
                        await self.ws.send("{}")
                        continue
                    self.messages.append(message)
                    self._changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason or ""
            self._changed.set()

    async def wait(self, pred: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async def poll() -> dict[str, Any]:
            while True:
                for message in self.messages:
                    if pred(message):
                        return message
                if self.close_code is not None:
                    raise AssertionError(f"closed {self.close_code}; got {self.messages}")
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(poll(), TIMEOUT)

    async def command(self, **request: Any) -> dict[str, Any]:
        self._next_id += 1
        cid = self._next_id
        await self.ws.send(json.dumps({"id": cid, **request}))
        return await self.wait(lambda m: m.get("id") == cid)

    def pushes(self, kind: str) -> list[dict[str, Any]]:
        return [m["push"] for m in self.messages if kind in m.get("push", {})]

    async def closed(self) -> int:
        await asyncio.wait_for(asyncio.shield(self._reader), TIMEOUT)
        assert self.close_code is not None
        return self.close_code


@pytest.fixture
async def ws_connect(server: ServerProcess) -> AsyncIterator[Callable[..., Any]]:
    """`await ws_connect(user, *channels)` -> a connected WsClient subscribed to channels."""
    opened: list[WsClient] = []

    async def factory(user: str, *channels: str) -> WsClient:
        ws = await asyncio.wait_for(websockets.connect(server.ws_url), TIMEOUT)
        client = WsClient(ws)
        opened.append(client)
        reply = await client.command(connect={"token": server.token(user), "name": "test"})
        client.client_id = reply["connect"]["client"]
        for channel in channels:
            reply = await client.command(subscribe={"channel": channel})
            assert "subscribe" in reply, reply
        return client

    yield factory
    for client in opened:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.ws.close(), 5)
        client._reader.cancel()


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(
        {"channel": OPEN_CHANNEL, "name": "api-node", "namespaces": {"bare": BARE}}
    )


async def raw_post(
    server: ServerProcess, path: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """POST to the API port; (status, decoded JSON body)."""
    hdrs = {"X-API-Key": server.api_key} if headers is None else headers
    url = f"http://127.0.0.1:{server.api_port}{path}"
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, data=body, headers=hdrs) as resp,
    ):
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, json.loads(await resp.read())


# --- publications --------------------------------------------------------------------------


async def test_publish_returns_offset_and_epoch(api: AsyncClient, ws_connect: Any) -> None:
    listener = await ws_connect("u1", "pub")
    first = await api.publish(PublishRequest(channel="pub", data={"n": 1}))
    second = await api.publish(PublishRequest(channel="pub", data={"n": 2}, tags={"k": "v"}))
    assert (first.offset, second.offset) == (1, 2)
    assert first.epoch and first.epoch == second.epoch

    push = await listener.wait(lambda m: m.get("push", {}).get("pub", {}).get("offset") == 2)
    assert push["push"]["channel"] == "pub"
    assert push["push"]["pub"]["data"] == {"n": 2}
    assert push["push"]["pub"]["tags"] == {"k": "v"}

    skipped = await api.publish(PublishRequest(channel="pub", data={"n": 3}, skip_history=True))
    assert skipped.offset == 0
    history = await api.history(HistoryRequest(channel="pub", limit=-1))
    assert [p.data for p in history.publications] == [{"n": 1}, {"n": 2}]

    bare = await api.publish(PublishRequest(channel="bare:x", data={"n": 1}))
    assert (bare.offset, bare.epoch) == (0, "")

    with pytest.raises(CentApiResponseError) as err:
        await api.publish(PublishRequest(channel="nope:x", data={}))
    assert err.value.code == 102


async def test_publish_with_idempotency_key_is_stored_once(api: AsyncClient) -> None:
    request = PublishRequest(channel="idem", data={"pay": 1}, idempotency_key="order-17")
    first = await api.publish(request)
    again = await api.publish(request)
    assert (again.offset, again.epoch) == (first.offset, first.epoch)
    other = await api.publish(
        PublishRequest(channel="idem", data={"pay": 2}, idempotency_key="order-18")
    )
    assert other.offset == first.offset + 1
    history = await api.history(HistoryRequest(channel="idem", limit=-1))
    assert [p.data for p in history.publications] == [{"pay": 1}, {"pay": 2}]


async def test_broadcast_answers_per_channel(api: AsyncClient, ws_connect: Any) -> None:
    listener = await ws_connect("u1", "b1", "b2")
    result = await api.broadcast(
        BroadcastRequest(channels=["b1", "b2", "nope:b3"], data={"all": True})
    )
    ok1, ok2, bad = result.responses
    assert ok1.result is not None and ok1.result.offset == 1
    assert ok2.result is not None and ok2.result.offset == 1
    assert bad.error is not None and bad.error.code == 102
    for channel in ("b1", "b2"):
        await listener.wait(lambda m, c=channel: m.get("push", {}).get("channel") == c)


# --- users and connections ------------------------------------------------------------------


async def test_subscribe_and_unsubscribe_push_to_the_connection(
    api: AsyncClient, ws_connect: Any
) -> None:
    client = await ws_connect("sam")
    await api.subscribe(SubscribeRequest(user="sam", channel="srv", data={"hello": "there"}))
    message = await client.wait(lambda m: "subscribe" in m.get("push", {}))
    push = message["push"]
    assert push["channel"] == "srv"
    assert push["subscribe"]["data"] == {"hello": "there"}
    assert push["subscribe"]["recoverable"] is True
    assert push["subscribe"]["epoch"]

    channels = await api.channels(ChannelsRequest())
    assert channels.channels["srv"].num_clients == 1
    await api.publish(PublishRequest(channel="srv", data={"x": 1}))
    await client.wait(lambda m: m.get("push", {}).get("pub", {}).get("data") == {"x": 1})

    await api.unsubscribe(UnsubscribeRequest(user="sam", channel="srv"))
    message = await client.wait(lambda m: "unsubscribe" in m.get("push", {}))
    assert message["push"]["channel"] == "srv"
    assert message["push"]["unsubscribe"]["code"] == 2000
    channels = await api.channels(ChannelsRequest())
    assert "srv" not in channels.channels

    # Only the named client when one is given.
    other = await ws_connect("sam")
    await api.subscribe(SubscribeRequest(user="sam", channel="one", client=other.client_id))
    await other.wait(lambda m: m.get("push", {}).get("channel") == "one")
    channels = await api.channels(ChannelsRequest(pattern="one"))
    assert channels.channels["one"].num_clients == 1
    assert not [p for p in client.pushes("subscribe") if p["channel"] == "one"]

    with pytest.raises(CentApiResponseError) as err:
        await api.subscribe(SubscribeRequest(user="", channel="srv"))
    assert err.value.code == 107


async def test_subscribe_recovers_from_recover_since(api: AsyncClient, ws_connect: Any) -> None:
    first = await api.publish(PublishRequest(channel="rs", data={"n": 1}))
    await api.publish(PublishRequest(channel="rs", data={"n": 2}))
    await api.publish(PublishRequest(channel="rs", data={"n": 3}))
    client = await ws_connect("rita")
    since = StreamPosition(offset=first.offset, epoch=first.epoch)
    await api.subscribe(SubscribeRequest(user="rita", channel="rs", recover_since=since))
    await client.wait(lambda m: m.get("push", {}).get("pub", {}).get("data") == {"n": 3})
    pubs = [p["pub"]["data"] for p in client.pushes("pub") if p["channel"] == "rs"]
    assert pubs == [{"n": 2}, {"n": 3}], "exactly the publications after the position, in order"
    subscribed = [p for p in client.pushes("subscribe") if p["channel"] == "rs"]
    # As from Centrifugo: recovered, the push has the offset asked from.
    assert subscribed and subscribed[0]["subscribe"]["offset"] == first.offset


async def test_session_and_base64_fields(api: AsyncClient, ws_connect: Any) -> None:
    """`session` selects emulated connections only (a WebSocket has none, as in
    Centrifugo); `b64info`/`b64data` are decoded and must be JSON."""
    client = await ws_connect("sam")
    await api.disconnect(DisconnectRequest(user="sam", session="s1"))
    await api.refresh(RefreshRequest(user="sam", session="s1", expired=True))
    await api.subscribe(SubscribeRequest(user="sam", channel="other", session="s1"))
    await asyncio.sleep(0.3)
    assert client.close_code is None and not client.pushes("subscribe")

    def b64(value: Any) -> str:
        return base64.b64encode(json.dumps(value).encode()).decode()

    await api.subscribe(
        SubscribeRequest(user="sam", channel="b64", b64info=b64({"i": 1}), b64data=b64({"d": 2}))
    )
    await client.wait(lambda m: m.get("push", {}).get("subscribe", {}).get("data") == {"d": 2})
    await api.publish(PublishRequest(channel="b64", data=None, b64data=b64({"p": 3})))
    await client.wait(lambda m: m.get("push", {}).get("pub", {}).get("data") == {"p": 3})
    for call in (
        api.publish(PublishRequest(channel="b64", data=None, b64data="AQ==")),
        api.publish(PublishRequest(channel="b64", data=None, b64data="not base64!")),
        api.subscribe(SubscribeRequest(user="sam", channel="c", b64info="eyJ9")),
    ):
        with pytest.raises(CentApiResponseError) as err:
            await call
        assert err.value.code == 107


async def test_disconnect_codes_and_whitelist(api: AsyncClient, ws_connect: Any) -> None:
    first = await ws_connect("tom")
    kept = await ws_connect("tom")
    await api.disconnect(DisconnectRequest(user="tom", whitelist=[kept.client_id]))
    assert await first.closed() == 3503
    await asyncio.sleep(0.3)
    assert kept.close_code is None

    await api.disconnect(
        DisconnectRequest(user="tom", disconnect=Disconnect(code=4000, reason="custom"))
    )
    assert await kept.closed() == 4000
    assert kept.close_reason == "custom"

    with pytest.raises(CentApiResponseError) as err:
        await api.disconnect(
            DisconnectRequest(user="tom", disconnect=Disconnect(code=1000, reason="x"))
        )
    assert err.value.code == 107


async def test_refresh_pushes_expiry_and_expired_closes(api: AsyncClient, ws_connect: Any) -> None:
    client = await ws_connect("uma")
    await api.refresh(RefreshRequest(user="uma", expire_at=int(time.time()) + 120))
    message = await client.wait(lambda m: "refresh" in m.get("push", {}))
    refresh = message["push"]["refresh"]
    assert refresh["expires"] is True
    assert 100 <= refresh["ttl"] <= 120

    await api.refresh(RefreshRequest(user="uma", expired=True))
    assert await client.closed() == 3005

    with pytest.raises(CentApiResponseError) as err:
        await api.refresh(RefreshRequest(user=""))
    assert err.value.code == 107


# --- channels ---------------------------------------------------------------------------------


async def test_presence_and_presence_stats(api: AsyncClient, ws_connect: Any) -> None:
    a1 = await ws_connect("ann", "hall")
    a2 = await ws_connect("ann", "hall")
    b = await ws_connect("ben", "hall")
    presence = await api.presence(PresenceRequest(channel="hall"))
    assert set(presence.presence) == {a1.client_id, a2.client_id, b.client_id}
    assert presence.presence[b.client_id].user == "ben"
    assert presence.presence[b.client_id].client == b.client_id
    stats = await api.presence_stats(PresenceStatsRequest(channel="hall"))
    assert (stats.num_clients, stats.num_users) == (3, 2)

    empty = await api.presence_stats(PresenceStatsRequest(channel="empty-hall"))
    assert (empty.num_clients, empty.num_users) == (0, 0)
    with pytest.raises(CentApiResponseError) as err:
        await api.presence(PresenceRequest(channel="bare:x"))
    assert err.value.code == 108


async def test_history_since_limit_reverse(api: AsyncClient) -> None:
    for i in range(1, 7):
        await api.publish(PublishRequest(channel="hist", data={"n": i}))
    full = await api.history(HistoryRequest(channel="hist", limit=-1))
    assert [p.offset for p in full.publications] == [1, 2, 3, 4, 5, 6]
    assert full.offset == 6 and full.epoch

    limited = await api.history(HistoryRequest(channel="hist", limit=2))
    assert [p.data["n"] for p in limited.publications] == [1, 2]
    newest = await api.history(HistoryRequest(channel="hist", limit=2, reverse=True))
    assert [p.data["n"] for p in newest.publications] == [6, 5]
    position = await api.history(HistoryRequest(channel="hist", limit=0))
    assert position.publications == [] and position.offset == 6

    since = StreamPosition(offset=4, epoch=full.epoch)
    after = await api.history(HistoryRequest(channel="hist", since=since, limit=-1))
    assert [p.data["n"] for p in after.publications] == [5, 6]
    after_limited = await api.history(HistoryRequest(channel="hist", since=since, limit=1))
    assert [p.data["n"] for p in after_limited.publications] == [5]

    with pytest.raises(CentApiResponseError) as err:
        await api.history(
            HistoryRequest(channel="hist", since=StreamPosition(offset=1, epoch="other"))
        )
    assert err.value.code == 112
    with pytest.raises(CentApiResponseError) as err:
        await api.history(HistoryRequest(channel="bare:x"))
    assert err.value.code == 108


async def test_history_remove_keeps_the_position(api: AsyncClient) -> None:
    for i in range(3):
        await api.publish(PublishRequest(channel="gone", data={"n": i}))
    await api.history_remove(HistoryRemoveRequest(channel="gone"))
    history = await api.history(HistoryRequest(channel="gone", limit=-1))
    assert history.publications == []
    assert history.offset == 3
    following = await api.publish(PublishRequest(channel="gone", data={"n": 3}))
    assert following.offset == 4


async def test_channels_with_pattern(api: AsyncClient, ws_connect: Any) -> None:
    await ws_connect("c1", "alpha.1", "alpha.2", "beta")
    await ws_connect("c2", "alpha.1")
    every = await api.channels(ChannelsRequest())
    assert {"alpha.1", "alpha.2", "beta"} <= set(every.channels)
    alpha = await api.channels(ChannelsRequest(pattern="alpha.*"))
    assert set(alpha.channels) == {"alpha.1", "alpha.2"}
    assert alpha.channels["alpha.1"].num_clients == 2
    assert alpha.channels["alpha.2"].num_clients == 1
    none = await api.channels(ChannelsRequest(pattern="gamma*"))
    assert none.channels == {}


async def test_info_describes_the_node(api: AsyncClient, ws_connect: Any) -> None:
    await ws_connect("i1", "x1", "x2")
    await ws_connect("i2", "x1")
    info = await api.info(InfoRequest())
    (node,) = info.nodes
    assert node.name == "api-node"
    assert node.uid and node.version
    assert (node.num_clients, node.num_users) == (2, 2)
    # Counted as the channels method sees them (personal channels included, if any).
    channels = (await api.channels(ChannelsRequest())).channels
    assert {"x1", "x2"} <= set(channels)
    assert node.num_channels == len(channels)
    assert node.num_subs == sum(c.num_clients for c in channels.values())
    assert node.uptime >= 0
    assert node.process is not None and node.process.rss > 0


@pytest.mark.parametrize("parallel", [False, True])
async def test_batch(api: AsyncClient, parallel: bool) -> None:
    result = await api.batch(
        BatchRequest(
            requests=[
                PublishRequest(channel="bt", data={"n": 1}),
                PublishRequest(channel="bt", data={"n": 2}),
                HistoryRequest(channel="bt", limit=-1),
                PresenceStatsRequest(channel="bt"),
            ],
            parallel=parallel,
        )
    )
    first, second, history, stats = result.replies
    assert {first.offset, second.offset} == {1, 2}
    if not parallel:
        assert (first.offset, second.offset) == (1, 2)
        assert [p.data["n"] for p in history.publications] == [1, 2]
    assert stats.num_clients == 0


async def test_batch_reports_errors_per_command(server: ServerProcess) -> None:
    body = json.dumps(
        {
            "commands": [
                {"publish": {"channel": "ok", "data": {}}},
                {"publish": {"channel": "nope:x", "data": {}}},
                {"frobnicate": {}},
            ]
        }
    ).encode()
    status, payload = await raw_post(server, "/api/batch", body)
    assert status == 200
    # As Centrifugo's BatchResponse: the replies at the top, not under "result".
    assert set(payload) == {"replies"}
    ok, unknown_ns, unknown_method = payload["replies"]
    assert ok["publish"]["offset"] == 1
    assert unknown_ns["error"]["code"] == 102
    assert unknown_method["error"]["code"] == 104
    nested = json.dumps({"commands": [{"batch": {"commands": []}}]}).encode()
    _, payload = await raw_post(server, "/api/batch", nested)
    assert payload["error"]["code"] == 107


# --- authentication and bad requests ----------------------------------------------------------


async def test_wrong_or_missing_api_key_is_401_with_json_error(server: ServerProcess) -> None:
    body = b'{"channel": "x", "data": {}}'
    for headers in ({"X-API-Key": "wrong"}, {}, {"X-API-Key": ""}):
        status, payload = await raw_post(server, "/api/publish", body, headers)
        assert status == 401, headers
        assert payload["error"]["code"] == 101
        assert "key" in payload["error"]["message"].lower()
    # Also before the method or body are looked at.
    status, payload = await raw_post(server, "/api/nosuch", b"{{{", {"X-API-Key": "wrong"})
    assert (status, payload["error"]["code"]) == (401, 101)
    status, payload = await raw_post(
        server, "/api/publish", body, {"Authorization": f"apikey {server.api_key}"}
    )
    assert status == 200 and payload["result"]["offset"] == 1

    async with AsyncClient(server.api_url, "wrong", timeout=TIMEOUT) as bad:
        with pytest.raises(CentUnauthorizedError):
            await bad.info(InfoRequest())


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "named"),
    [
        ("/api/publish", b'{"channel": "x", "data": ', 400, 107, "json"),
        ("/api/publish", b"[1, 2]", 400, 107, "object"),
        (
            "/api/publish",
            b'{"channel": "x", "data": {}, "chanel_typo": 1}',
            400,
            107,
            "chanel_typo",
        ),
        # A missing field is answered in an HTTP 200, as Centrifugo does.
        ("/api/publish", b'{"data": {}}', 200, 107, "channel"),
        ("/api/history", b'{"channel": "x", "limit": "ten"}', 400, 107, "limit"),
        ("/api/frobnicate", b"{}", 404, 104, "frobnicate"),
    ],
)
async def test_bad_requests_get_json_errors_naming_the_problem(
    server: ServerProcess, path: str, body: bytes, status: int, code: int, named: str
) -> None:
    got, payload = await raw_post(server, path, body)
    assert got == status, payload
    assert payload["error"]["code"] == code
    assert named in payload["error"]["message"].lower(), payload


async def test_publish_without_data_is_a_107_reply(server: ServerProcess) -> None:
    """Decoded (`b64data` may stand in for `data`), then refused by the method: HTTP 200."""
    status, payload = await raw_post(server, "/api/publish", b'{"channel": "x"}')
    assert status == 200
    assert payload["error"] == {"code": 107, "message": "data required"}


async def test_health(server: ServerProcess) -> None:
    url = f"http://127.0.0.1:{server.api_port}/health"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session,
        session.get(url) as resp,
    ):
        assert resp.status == 200
        assert await resp.json() == {}
