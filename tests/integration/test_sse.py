"""Unidirectional transports over the real wire: SSE (`/connection/uni_sse`) read with a raw
socket, and `/connection/uni_websocket` with the `websockets` client.

Unidirectional clients cannot subscribe: they get the channels of their
token's `channels` claim (server-side subscriptions), and resume them with
`subs` recover positions in the connect request or, for SSE, with the
`Last-Event-ID` header that `EventSource` sends by itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
import websockets

from tests.conftest import ServerProcess
from tests.integration.support.api import api_raw

TIMEOUT = 10.0
NEWS: dict[str, Any] = {
    "history_size": 100,
    "history_ttl": "5m",
    "force_recovery": True,
}


@pytest.fixture
def uni_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"channel": NEWS, "personal_channel": False})


async def publish(server: ServerProcess, channel: str, data: Any) -> dict[str, Any]:
    body = await api_raw(server, "publish", {"channel": channel, "data": data})
    assert "result" in body, body
    return body["result"]


@dataclass
class Event:
    data: dict[str, Any]
    id: str = ""


@dataclass
class SseStream:
    """One HTTP request on a raw socket: status, headers, then `id:`/`data:` events."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    async def event(self, within: float = TIMEOUT) -> Event:
        """The next event that is not a `{}` ping."""
        while True:
            event = await asyncio.wait_for(self._read_event(), within)
            if event.data:
                return event

    async def _read_event(self) -> Event:
        event_id, data = "", []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("stream closed")
            text = line.decode().rstrip("\n")
            if not text:
                if data:
                    return Event(json.loads("\n".join(data)), event_id)
                continue
            name, _, value = text.partition(": ")
            if name == "id":
                event_id = value
            elif name == "data":
                data.append(value)

    async def body(self) -> bytes:
        return await asyncio.wait_for(self.reader.read(), TIMEOUT)

    def close(self) -> None:
        self.writer.close()


async def open_stream(
    server: ServerProcess,
    query: dict[str, str] | None = None,
    method: str = "GET",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> SseStream:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    target = "/connection/uni_sse" + (f"?{urlencode(query)}" if query else "")
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()
    stream = SseStream(reader, writer)
    status_line = await asyncio.wait_for(reader.readline(), TIMEOUT)
    stream.status = int(status_line.split()[1])
    while True:
        line = (await asyncio.wait_for(reader.readline(), TIMEOUT)).decode().strip()
        if not line:
            break
        name, _, value = line.partition(":")
        stream.headers[name.lower()] = value.strip()
    return stream


@pytest.fixture
async def streams() -> AsyncIterator[list[SseStream]]:
    opened: list[SseStream] = []
    yield opened
    for stream in opened:
        stream.close()


def connect_query(token: str, **extra: Any) -> dict[str, str]:
    return {"cf_connect": json.dumps({"token": token, **extra})}


async def test_sse_get_receives_publications(
    uni_server: ServerProcess, streams: list[SseStream]
) -> None:
    token = uni_server.token("reader", channels=["news"])
    stream = await open_stream(uni_server, connect_query(token))
    streams.append(stream)
    assert stream.status == 200
    assert stream.headers["content-type"] == "text/event-stream"
    assert stream.headers["cache-control"] == "no-cache"
    connect = (await stream.event()).data["connect"]
    assert connect["client"]
    assert "news" in connect["subs"]

    for n in range(3):
        await publish(uni_server, "news", {"n": n})
    for n in range(3):
        event = await stream.event()
        assert event.data["channel"] == "news"
        assert event.data["pub"]["data"] == {"n": n}
        assert event.data["pub"]["offset"] == n + 1
        assert event.id == ""  # ids only for the channel named in cf_channel


async def test_sse_post_connect_body(uni_server: ServerProcess, streams: list[SseStream]) -> None:
    token = uni_server.token("poster", channels=["news"])
    body = json.dumps({"token": token}).encode()
    stream = await open_stream(uni_server, method="POST", body=body)
    streams.append(stream)
    assert stream.status == 200
    assert "news" in (await stream.event()).data["connect"]["subs"]
    await publish(uni_server, "news", {"via": "post"})
    assert (await stream.event()).data["pub"]["data"] == {"via": "post"}


async def test_sse_resumes_with_last_event_id(
    uni_server: ServerProcess, streams: list[SseStream]
) -> None:
    token = uni_server.token("resumer", channels=["news"])
    query = {**connect_query(token), "cf_channel": "news"}
    first = await open_stream(uni_server, query)
    streams.append(first)
    await first.event()  # connect
    await publish(uni_server, "news", {"n": 1})
    await publish(uni_server, "news", {"n": 2})
    events = [await first.event(), await first.event()]
    epoch = (await publish(uni_server, "news", {"n": 3}))["epoch"]
    assert [e.id for e in events] == [f"1:{epoch}", f"2:{epoch}"]
    assert (await first.event()).id == f"3:{epoch}"
    first.close()

    # Published while nobody listens.
    await publish(uni_server, "news", {"n": 4})
    await publish(uni_server, "news", {"n": 5})

    second = await open_stream(uni_server, query, headers={"Last-Event-ID": f"3:{epoch}"})
    streams.append(second)
    assert second.status == 200
    connected = await second.event()
    # Its id is where the recovered publications reach: a second drop resumes after them.
    assert connected.id == f"5:{epoch}"
    news = connected.data["connect"]["subs"]["news"]
    assert news["recovered"] is True
    assert news["was_recovering"] is True
    assert [p["data"] for p in news["publications"]] == [{"n": 4}, {"n": 5}]
    assert news["offset"] == 3  # as from Centrifugo: the offset asked from
    await publish(uni_server, "news", {"n": 6})
    live = await second.event()
    assert live.data["pub"]["data"] == {"n": 6}
    assert live.id == f"6:{epoch}"


async def test_sse_resumes_with_subs_recover(
    uni_server: ServerProcess, streams: list[SseStream]
) -> None:
    token = uni_server.token("recoverer", channels=["news"])
    first = await open_stream(uni_server, connect_query(token))
    streams.append(first)
    sub = (await first.event()).data["connect"]["subs"]["news"]
    epoch = sub["epoch"]
    await publish(uni_server, "news", {"n": 1})
    assert (await first.event()).data["pub"]["offset"] == 1
    first.close()
    for n in (2, 3, 4):
        await publish(uni_server, "news", {"n": n})

    subs = {"news": {"recover": True, "offset": 1, "epoch": epoch}}
    second = await open_stream(uni_server, connect_query(token, subs=subs))
    streams.append(second)
    news = (await second.event()).data["connect"]["subs"]["news"]
    assert news["recovered"] is True
    assert [p["offset"] for p in news["publications"]] == [2, 3, 4]
    assert [p["data"]["n"] for p in news["publications"]] == [2, 3, 4]

    # A position from another epoch cannot be recovered, and the reply says so.
    subs = {"news": {"recover": True, "offset": 1, "epoch": "not-the-epoch"}}
    third = await open_stream(uni_server, connect_query(token, subs=subs))
    streams.append(third)
    news = (await third.event()).data["connect"]["subs"]["news"]
    assert not news.get("recovered")
    assert not news.get("publications")
    assert news["epoch"] == epoch


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ({"cf_connect": "{not json"}, {}),
        ({"cf_connect": "[1, 2]"}, {}),
        ({"cf_connect": "{}", "cf_channel": "news"}, {"Last-Event-ID": "nonsense"}),
    ],
    ids=["not-json", "not-an-object", "bad-last-event-id"],
)
async def test_sse_bad_connect_is_400(
    uni_server: ServerProcess, query: dict[str, str], headers: dict[str, str]
) -> None:
    stream = await open_stream(uni_server, query, headers=headers)
    try:
        assert stream.status == 400
        assert await stream.body()
    finally:
        stream.close()


async def test_sse_bad_post_body_and_method(uni_server: ServerProcess) -> None:
    stream = await open_stream(uni_server, method="POST", body=b"nope")
    stream.close()
    assert stream.status == 400
    stream = await open_stream(uni_server, method="PUT")
    stream.close()
    assert stream.status == 405


async def test_sse_invalid_token_is_closed_with_a_disconnect(uni_server: ServerProcess) -> None:
    stream = await open_stream(uni_server, {"cf_connect": json.dumps({"token": "bad"})})
    try:
        assert stream.status == 200  # the stream starts; the connect then fails
        event = await stream.event()
        assert event.data["disconnect"]["code"] == 3500
        assert await stream.body() == b""  # and the server closes it
    finally:
        stream.close()


def uni_ws_url(server: ServerProcess, query: dict[str, str] | None = None) -> str:
    base = f"ws://127.0.0.1:{server.port}/connection/uni_websocket"
    return base + (f"?{urlencode(query)}" if query else "")


async def next_push(ws: Any) -> dict[str, Any]:
    """The next push that is not a `{}` ping (one JSON object per line)."""
    while True:
        frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
        for line in str(frame).split("\n"):
            if line and line != "{}":
                value: dict[str, Any] = json.loads(line)
                return value


async def test_uni_websocket_with_cf_connect(uni_server: ServerProcess) -> None:
    token = uni_server.token("ws-url", channels=["news"])
    async with websockets.connect(uni_ws_url(uni_server, connect_query(token))) as ws:
        connect = (await next_push(ws))["connect"]
        assert "news" in connect["subs"]
        assert connect.get("pong") in (None, False)  # unidirectional: no pongs expected
        await publish(uni_server, "news", {"hello": "url"})
        push = await next_push(ws)
        assert push == {"channel": "news", "pub": {"data": {"hello": "url"}, "offset": 1}}


async def test_uni_websocket_with_first_message_connect(uni_server: ServerProcess) -> None:
    token = uni_server.token("ws-msg", channels=["news"])
    async with websockets.connect(uni_ws_url(uni_server)) as ws:
        await ws.send(json.dumps({"token": token}))
        connect = (await next_push(ws))["connect"]
        assert "news" in connect["subs"]
        await publish(uni_server, "news", {"hello": "message"})
        assert (await next_push(ws))["pub"]["data"] == {"hello": "message"}
        await ws.send(json.dumps({"id": 2, "publish": {"channel": "news", "data": {}}}))
        await publish(uni_server, "news", {"after": "ignored command"})
        assert (await next_push(ws))["pub"]["data"] == {"after": "ignored command"}


async def test_uni_websocket_recovers_with_subs(uni_server: ServerProcess) -> None:
    token = uni_server.token("ws-recover", channels=["news"])
    async with websockets.connect(uni_ws_url(uni_server, connect_query(token))) as ws:
        epoch = (await next_push(ws))["connect"]["subs"]["news"]["epoch"]
    await publish(uni_server, "news", {"n": 1})
    await publish(uni_server, "news", {"n": 2})
    subs = {"news": {"recover": True, "offset": 0, "epoch": epoch}}
    async with websockets.connect(uni_ws_url(uni_server)) as ws:
        await ws.send(json.dumps({"token": token, "subs": subs}))
        news = (await next_push(ws))["connect"]["subs"]["news"]
        assert news["recovered"] is True
        assert [p["data"] for p in news["publications"]] == [{"n": 1}, {"n": 2}]


async def test_uni_websocket_bad_connect_closes_3501(uni_server: ServerProcess) -> None:
    async with websockets.connect(uni_ws_url(uni_server)) as ws:
        await ws.send("this is not json")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 3501
