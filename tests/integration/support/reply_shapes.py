"""One scripted session of every client command and API method, recorded as reply shapes.

The same script runs against Centrifugo v6 (to record `tests/fixtures/`) and
against tidings (to compare): client commands over a raw JSON WebSocket,
API methods over HTTP, with the same channel options on both sides
(`centrifugo_config` and `TIDINGS_SETTINGS` say the same thing). A *shape*
keeps a reply's keys, its booleans, error codes and messages, and the
names a test chose (channels, users, methods); every other string and
number (ids, epochs, offsets, times, ttls, versions) becomes a type
placeholder, and a map keyed by client ids becomes a list of its values'
shapes. Two servers that agree on shapes send SDKs the same fields.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import jwt
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as connect_ws
from websockets.exceptions import ConnectionClosed

from tests.integration.support.ws import open_ws, parse_frame

SECRET = "reply-shapes-secret-of-at-least-32-bytes"
API_KEY = "shape-key"
STEP = 5.0
#: The id of the command that shows a connection still answers (see `Recorder.outcome`).
MARKER = 99

#: Values kept as they are: what the script chose, and what clients match on.
LITERAL_KEYS = frozenset({"channel", "user", "method", "code", "message", "reason", "temporary"})
#: Values whose content is each server's own (the metrics of `info`): only their type.
OPAQUE_KEYS = frozenset({"items"})
#: Counts that the script makes deterministic.
COUNT_KEYS = frozenset({"num_clients", "num_users", "num_subs", "num_channels"})
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

#: Channel options, in the names both servers use: no namespace = everything allowed.
OPEN = {
    "presence": True,
    "join_leave": True,
    "force_push_join_leave": True,
    "history_size": 10,
    "history_ttl": "300s",
    "force_recovery": True,
    "allow_subscribe_for_client": True,
    "allow_publish_for_client": True,
    "allow_presence_for_subscriber": True,
    "allow_history_for_subscriber": True,
}
#: "closed:": subscribe only; no publish, presence or history.
CLOSED = {"allow_subscribe_for_client": True}


def centrifugo_config(port: int) -> dict[str, Any]:
    """Centrifugo v6's configuration of the scripted session."""
    return {
        "http_server": {"address": "127.0.0.1", "port": port},
        "http_api": {"key": API_KEY},
        "log": {"level": "error"},
        "client": {"token": {"hmac_secret_key": SECRET}, "allowed_origins": ["*"]},
        "uni_websocket": {"enabled": True},
        "uni_sse": {"enabled": True},
        "uni_http_stream": {"enabled": True},
        "http_stream": {"enabled": True},
        "sse": {"enabled": True},
        "channel": {"without_namespace": OPEN, "namespaces": [{"name": "closed", **CLOSED}]},
    }


#: The same for `tidings serve` (its test fixture adds address, ports and data_dir).
TIDINGS_SETTINGS: dict[str, Any] = {
    "api_key": API_KEY,
    "token_hmac_secret": SECRET,
    "personal_channel": False,
    "channel": OPEN,
    "namespaces": {"closed": CLOSED},
}


def shape(value: Any, key: str = "") -> Any:
    """`value` with its volatile parts replaced (see the module docstring)."""
    if key in OPAQUE_KEYS:
        return f"<{type(value).__name__}>"
    if isinstance(value, dict):
        if value and all(_UUID.match(k) for k in value):
            return {"<client-id>": sorted((shape(v) for v in value.values()), key=json.dumps)}
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(item, key) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return value if key in LITERAL_KEYS or not value else "<string>"
    if isinstance(value, int | float):
        return value if key in LITERAL_KEYS | COUNT_KEYS else "<number>"
    raise TypeError(f"not JSON: {value!r}")


def token(user: str, ttl: float = 3600, **claims: Any) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time() + ttl), **claims}, SECRET, "HS256")


@dataclass
class Conn:
    """A raw client connection: replies by id, pushes queued apart."""

    ws: ClientConnection
    pushes: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1

    async def _read(self) -> None:
        async with asyncio.timeout(STEP):
            frame = await self.ws.recv()
        for message in parse_frame(frame):
            if not message:
                await self.ws.send("{}")  # a server ping
            elif message.get("id"):
                self.replies[message["id"]] = message
            else:
                self.pushes.append(message)

    async def command(self, **request: Any) -> dict[str, Any]:
        command_id, self.next_id = self.next_id, self.next_id + 1
        await self.ws.send(json.dumps({"id": command_id, **request}))
        while command_id not in self.replies:
            await self._read()
        return self.replies.pop(command_id)

    async def push(self, kind: str, user: str = "") -> dict[str, Any]:
        """The first queued (or next) push that has `kind` (e.g. "pub", "join").

        With `user`, a join or leave of that user only.
        """
        while True:
            for n, push in enumerate(self.pushes):
                body = push.get("push", push)
                if kind in body and (not user or body[kind]["info"]["user"] == user):
                    return self.pushes.pop(n)
            await self._read()

    async def closed(self) -> dict[str, Any]:
        """Read until the server closes; its close code and reason."""
        try:
            while True:
                await self._read()
        except ConnectionClosed as exc:
            frame = exc.rcvd
            return {"close": {"code": frame.code, "reason": frame.reason} if frame else None}


class Recorder:
    """Runs the script against one server; `shapes` maps each step to its reply's shape."""

    def __init__(self, ws_url: str, api_url: str) -> None:
        self.ws_url = ws_url
        self.api_url = api_url
        self.shapes: dict[str, Any] = {}
        self._conns: list[Conn] = []

    async def connect(self, step: str, user: str, **extra: Any) -> Conn:
        conn = Conn(await open_ws(self.ws_url))
        self._conns.append(conn)
        await self.record(step, conn.command(connect={"token": token(user), **extra}))
        return conn

    async def outcome(self, step: str, message: dict[str, Any]) -> None:
        """Send `message` on a new connection, then a marker command: replies, and a close."""
        conn = await self.connect(f"{step}/connect", "dave")
        del self.shapes[f"{step}/connect"]
        await conn.ws.send(json.dumps(message))
        await conn.ws.send(json.dumps({"id": MARKER, "presence_stats": {"channel": "news"}}))
        result: dict[str, Any] = {}
        try:
            while MARKER not in conn.replies:
                await conn._read()
        except ConnectionClosed as exc:
            frame = exc.rcvd
            result["close"] = {"code": frame.code, "reason": frame.reason} if frame else None
        conn.replies.pop(MARKER, None)
        result["replies"] = [conn.replies[n] for n in sorted(conn.replies)]
        self.shapes[step] = shape(result)

    async def record(self, step: str, reply: Any) -> dict[str, Any]:
        try:
            got: dict[str, Any] = await reply
        except TimeoutError:
            got = {"timeout": f"no answer within {STEP} s"}
        except ConnectionClosed as exc:
            raise AssertionError(f"step {step}: {exc!r}") from None
        self.shapes[step] = shape({k: v for k, v in got.items() if k != "id"})
        return got

    async def api(self, step: str, method: str, body: Any, *, key: str = API_KEY) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.api_url}/{method}",
                data=body if isinstance(body, bytes) else json.dumps(body),
                headers={"X-API-Key": key, "Content-Type": "application/json"},
            ) as resp,
        ):
            text = await resp.text()
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = "<not JSON>"
            self.shapes[step] = {"status": resp.status, "body": shape(parsed)}
            return parsed

    async def run(self) -> dict[str, Any]:
        try:
            await self._client_commands()
            await self._api_methods()
            await self._other_transports()
        finally:
            for conn in self._conns:
                await conn.ws.close()
        return self.shapes

    async def _client_commands(self) -> None:
        a = await self.connect("connect", "alice", name="shapes", version="1")
        subscribed = await self.record("subscribe", a.command(subscribe={"channel": "news"}))
        epoch = subscribed["subscribe"]["epoch"]
        priv = {"channel": "priv", "token": token("alice", channel="priv")}
        await self.record("subscribe_with_token", a.command(subscribe=priv))
        publish = {"channel": "news", "data": {"n": 1}}
        await self.record("publish", a.command(publish=publish))
        await self.record("push_publication", a.push("pub"))
        await self.record("presence", a.command(presence={"channel": "news"}))
        await self.record("presence_stats", a.command(presence_stats={"channel": "news"}))
        await self.record("history", a.command(history={"channel": "news", "limit": 10}))
        since = {"channel": "news", "limit": 10, "since": {"offset": 0, "epoch": epoch}}
        await self.record("history_since", a.command(history=since))
        await self.record("rpc_without_proxy", a.command(rpc={"method": "m", "data": {}}))
        await self.record("refresh", a.command(refresh={"token": token("alice")}))
        sub_token = token("alice", channel="priv")
        await self.record(
            "sub_refresh", a.command(sub_refresh={"channel": "priv", "token": sub_token})
        )
        await self.outcome("ping_with_id", {"id": 2, "ping": {}})
        await self.outcome("send_with_id", {"id": 2, "send": {"data": {}}})
        await self.outcome("send", {"send": {"data": {}}})
        await self.outcome("unknown_command", {"id": 2, "frobnicate": {}})
        await self.outcome("command_without_method", {"id": 2})

        b = await self.connect("connect_second", "bob")
        recover = {"channel": "news", "recover": True, "offset": 0, "epoch": epoch}
        await self.record("subscribe_recover", b.command(subscribe=recover))
        await self.record("push_own_join", a.push("join", "alice"))
        await self.record("push_join", a.push("join", "bob"))
        await self.record("unsubscribe", b.command(unsubscribe={"channel": "news"}))
        await self.record("push_leave", a.push("leave", "bob"))
        presence_one = a.command(presence_stats={"channel": "news"})
        await self.record("presence_stats_after_leave", presence_one)

        unknown = a.command(subscribe={"channel": "nope:x"})
        await self.record("error_unknown_channel", unknown)
        again = a.command(subscribe={"channel": "news"})
        await self.record("error_already_subscribed", again)
        closed = {"channel": "closed:x", "data": {}}
        await self.record("error_publish_not_allowed", a.command(publish=closed))
        await self.record(
            "error_presence_not_available", a.command(presence={"channel": "closed:x"})
        )
        await self.record("error_history_not_available", a.command(history={"channel": "closed:x"}))
        await self.record(
            "error_unsubscribe_not_subscribed", a.command(unsubscribe={"channel": "other"})
        )
        bad = Conn(await open_ws(self.ws_url))
        self._conns.append(bad)
        await bad.ws.send(json.dumps({"id": 1, "connect": {"token": "not-a-jwt"}}))
        self.shapes["error_connect_bad_token"] = shape(await bad.closed())

    async def _api_methods(self) -> None:
        # alice (from the client part) is subscribed to "news"; carol joins her there.
        carol = await self.connect("api_connect_carol", "carol")
        await carol.command(subscribe={"channel": "news"})
        await self.api("api_publish", "publish", {"channel": "news", "data": {"n": 2}})
        broadcast = {"channels": ["news", "other"], "data": {"n": 3}}
        await self.api("api_broadcast", "broadcast", broadcast)
        await self.api("api_presence", "presence", {"channel": "news"})
        await self.api("api_presence_stats", "presence_stats", {"channel": "news"})
        await self.api("api_history", "history", {"channel": "news", "limit": 10})
        await self.api("api_history_reverse", "history", {"channel": "news", "reverse": True})
        await self.api("api_history_remove", "history_remove", {"channel": "news"})
        await self.api("api_channels", "channels", {})
        info = await self.api("api_info", "info", {})
        for node in info["result"]["nodes"]:
            # Centrifugo omits a zero uptime (its first second); its counts lag (updated
            # every few seconds): neither says anything about the shape.
            node.setdefault("uptime", 0)
            for count in COUNT_KEYS:
                node[count] = -1
        self.shapes["api_info"]["body"] = shape(info)
        await self.api("api_subscribe", "subscribe", {"user": "carol", "channel": "extra"})
        await self.record("api_push_subscribe", carol.push("subscribe"))
        await self.api("api_unsubscribe", "unsubscribe", {"user": "carol", "channel": "extra"})
        await self.record("api_push_unsubscribe", carol.push("unsubscribe"))
        refresh = {"user": "carol", "expire_at": int(time.time()) + 600}
        await self.api("api_refresh", "refresh", refresh)
        batch = {
            "commands": [
                {"publish": {"channel": "news", "data": {"n": 4}}},
                {"presence_stats": {"channel": "news"}},
                {"publish": {"channel": "nope:x", "data": {}}},
            ]
        }
        await self.api("api_batch", "batch", batch)
        disconnect = {"user": "carol", "disconnect": {"code": 4000, "reason": "bye"}}
        await self.api("api_disconnect", "disconnect", disconnect)
        self.shapes["api_disconnect_close"] = shape(await carol.closed())
        await self.api("api_error_unknown_channel", "publish", {"channel": "nope:x", "data": {}})
        await self.api("api_error_no_channel", "publish", {"data": {}})
        await self.api("api_error_presence_not_available", "presence", {"channel": "closed:x"})
        await self.api("api_error_bad_json", "publish", b"{not json")
        await self.api("api_error_unknown_method", "no_such_method", {})
        await self.api("api_error_bad_key", "info", {}, key="wrong")

    async def _first_line(self, method: str, path: str, body: bytes = b"") -> Any:
        """The first non-ping message of a streamed response (SSE `data:` or a JSON line)."""
        base = self.ws_url.replace("ws://", "http://").split("/connection/")[0]
        headers = {"Content-Type": "application/json"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, base + path, data=body, headers=headers) as resp,
        ):
            async with asyncio.timeout(STEP):
                async for raw in resp.content:
                    line = raw.strip().removeprefix(b"data: ")
                    if line and line != b"{}":
                        return json.loads(line)
        raise AssertionError(f"{path}: the stream ended")

    async def _other_transports(self) -> None:
        """The first message of every other transport: connect replies and pushes."""
        connect = json.dumps({"token": token("erin")})
        self.shapes["uni_http_stream_connect"] = shape(
            await self._first_line("POST", "/connection/uni_http_stream", connect.encode())
        )
        query = urlencode({"cf_connect": connect})
        self.shapes["uni_sse_connect"] = shape(
            await self._first_line("GET", f"/connection/uni_sse?{query}")
        )
        uni_ws = self.ws_url.replace("/connection/websocket", "/connection/uni_websocket")
        async with connect_ws(f"{uni_ws}?{query}") as ws, asyncio.timeout(STEP):
            self.shapes["uni_websocket_connect"] = shape(json.loads(await ws.recv()))
        command = json.dumps({"id": 1, "connect": {"token": token("erin")}})
        self.shapes["http_stream_connect"] = shape(
            await self._first_line("POST", "/connection/http_stream", command.encode())
        )
        sse_query = urlencode({"cf_connect": command})
        self.shapes["sse_connect"] = shape(
            await self._first_line("GET", f"/connection/sse?{sse_query}")
        )


async def record(ws_url: str, api_url: str) -> dict[str, Any]:
    """The shapes of the scripted session against the server at these addresses."""
    return await Recorder(ws_url, api_url).run()


def without_publication_epochs(value: Any) -> Any:
    """`value` without the `epoch` inside publications.

    Centrifugo's memory engine writes the stream's epoch into each publication
    (pushes, history, recovery), its Redis engine does not; SDKs take the epoch
    from the subscribe and history results, and tidings writes it only there.
    """
    if isinstance(value, dict):
        out = {k: without_publication_epochs(v) for k, v in value.items()}
        for key in ("pub",):
            if isinstance(out.get(key), dict):
                out[key].pop("epoch", None)
        if isinstance(out.get("publications"), list):
            for pub in out["publications"]:
                if isinstance(pub, dict):
                    pub.pop("epoch", None)
        return out
    if isinstance(value, list):
        return [without_publication_epochs(item) for item in value]
    return value


def differences(want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Steps whose shapes differ, one line each: the step, what Centrifugo sent, what we sent."""
    out = []
    for step in sorted(set(want) | set(got)):
        if want.get(step) != got.get(step):
            mine, theirs = json.dumps(got.get(step)), json.dumps(want.get(step))
            out.append(f"{step}: centrifugo {theirs}\n{' ' * len(step)}  tidings    {mine}")
    return out
