"""lookupd's HTTP API, as nsqlookupd v1.3.0 answers it.

Consumers ask `/lookup?topic=` for the queue nodes of a topic; tools use `/topics`,
`/channels`, `/nodes`, the create/delete/tombstone calls, `/ping` and `/info`.
Answers are nsqlookupd's "v1" format whatever the `Accept` header says (pynsq and
go-nsq send `application/vnd.nsq; version=1.0`): bare JSON on success, empty body for
actions, `{"message": "CODE"}` with the HTTP status on errors, and the header
`X-NSQ-Content-Type: nsq; version=1.0` on all of them. Query strings are parsed as
strictly as Go's `url.ParseQuery` (a bad escape or a `;` is `INVALID_REQUEST`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from tidings.lookup.registry import CHANNEL, CLIENT, TOPIC, Node, Registration, RegistrationTable
from tidings.lookup.router import Found, MethodRouter, NotAllowed, Options, Redirect
from tidings.protocol.nsq.names import is_valid_name

V1_HEADER = {"X-NSQ-Content-Type": "nsq; version=1.0"}
JSON_TYPE = "application/json; charset=utf-8"
#: Go's `time.Time{}.UnixNano()`: what nsqlookupd's /debug shows for "never tombstoned".
GO_ZERO_TIME_NS = -6795364578871345152
_GO_HTML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;"}
_GO_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_BAD_ESCAPE = re.compile(r"%(?![0-9a-fA-F]{2})")

Params = dict[str, list[str]]
#: A handler gets the raw query string and parses it only if it reads parameters, as
#: nsqlookupd does (a malformed query is an error only where parameters are read).
Handler = Callable[[str], Awaitable[web.Response]]


class HTTPError(Exception):
    """An API refusal: the HTTP status and nsqlookupd's message code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Liveness:
    """How long a node stays listed without a PING, and how long a tombstone hides it."""

    inactive_producer_timeout: float = 300.0
    tombstone_lifetime: float = 45.0


def parse_query(raw: str) -> Params:
    """Go's `url.ParseQuery`: `&`-separated, `+` is a space, strict `%XX` escapes."""
    params: Params = {}
    for part in raw.split("&"):
        if not part:
            continue
        if ";" in part:
            raise HTTPError(400, "INVALID_REQUEST")
        key, _, value = part.partition("=")
        if _BAD_ESCAPE.search(key) or _BAD_ESCAPE.search(value):
            raise HTTPError(400, "INVALID_REQUEST")
        params.setdefault(unquote_plus(key), []).append(unquote_plus(value))
    return params


def _json(data: object, status: int = 200) -> web.Response:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # Go's encoder escapes these (only ever inside strings) so JSON is safe in HTML.
    for char, escaped in _GO_JSON_ESCAPES.items():
        text = text.replace(char, escaped)
    body = text.encode()
    return web.Response(status=status, body=body, headers={**V1_HEADER, "Content-Type": JSON_TYPE})


def _empty() -> web.Response:
    return web.Response(status=200, body=b"", headers=V1_HEADER)


def _redirect(method: str, status: int, location: str) -> web.Response:
    """Go's `http.Redirect`: a small HTML body for GET and HEAD only."""
    if method not in ("GET", "HEAD"):
        return web.Response(status=status, headers={"Location": location})
    escaped = "".join(_GO_HTML_ESCAPES.get(c, c) for c in location)
    reason = "Moved Permanently" if status == 301 else "Temporary Redirect"
    return web.Response(
        status=status,
        text=f'<a href="{escaped}">{reason}</a>.\n\n',
        content_type="text/html",
        headers={"Location": location},
    )


def _required(params: Params, name: str) -> str:
    values = params.get(name)
    if values is None:
        raise HTTPError(400, f"MISSING_ARG_{name.upper()}")
    return values[0]


def _topic_and_channel(params: Params) -> tuple[str, str]:
    topic = _required(params, "topic")
    if not is_valid_name(topic):
        raise HTTPError(400, "INVALID_ARG_TOPIC")
    channel = _required(params, "channel")
    if not is_valid_name(channel):
        raise HTTPError(400, "INVALID_ARG_CHANNEL")
    return topic, channel


def _peer(node: Node) -> dict[str, Any]:
    info = node.info
    return {
        "remote_address": node.remote_address,
        "hostname": info.hostname,
        "broadcast_address": info.broadcast_address,
        "tcp_port": info.tcp_port,
        "http_port": info.http_port,
        "version": info.version,
    }


class LookupHTTP:
    """The HTTP API over a `RegistrationTable`; `app` is the aiohttp application."""

    def __init__(
        self,
        table: RegistrationTable,
        liveness: Liveness,
        version: str,
        clock: Callable[[], float],
    ) -> None:
        self._table = table
        self._liveness = liveness
        self._version = version
        self._clock = clock
        get, post = "GET", "POST"
        self._router: MethodRouter[Handler] = MethodRouter(
            {
                (get, "/ping"): self._ping,
                (get, "/info"): self._info,
                (get, "/debug"): self._debug,
                (get, "/lookup"): self._lookup,
                (get, "/topics"): self._topics,
                (get, "/channels"): self._channels,
                (get, "/nodes"): self._nodes,
                (post, "/topic/create"): self._create_topic,
                (post, "/topic/delete"): self._delete_topic,
                (post, "/topic/tombstone"): self._tombstone,
                (post, "/channel/create"): self._create_channel,
                (post, "/channel/delete"): self._delete_channel,
            }
        )
        self.app = web.Application(client_max_size=1024 * 1024)
        self.app.router.add_route("*", "/{path:.*}", self._dispatch)

    async def _dispatch(self, request: web.Request) -> web.Response:
        route = self._router.resolve(request.method, request.path)
        try:
            match route:
                case Found(handler=handler):
                    return await handler(request.query_string)
                case Redirect(status=status, path=path):
                    query = f"?{request.query_string}" if request.query_string else ""
                    return _redirect(request.method, status, path + query)
                case Options(allow=allow):
                    return web.Response(status=200, headers={"Allow": allow})
                case NotAllowed(allow=allow):
                    response = _json({"message": "METHOD_NOT_ALLOWED"}, 405)
                    response.headers["Allow"] = allow
                    return response
            raise HTTPError(404, "NOT_FOUND")
        except HTTPError as exc:
            return _json({"message": exc.message}, exc.status)

    async def _ping(self, query: str) -> web.Response:
        return web.Response(text="OK", content_type="text/plain", charset="utf-8")

    async def _info(self, query: str) -> web.Response:
        return _json({"version": self._version})

    async def _topics(self, query: str) -> web.Response:
        topics = [r.key for r in self._table.find_registrations(TOPIC, "*", "")]
        return _json({"topics": topics})

    async def _channels(self, query: str) -> web.Response:
        params = parse_query(query)
        topic = _required(params, "topic")
        channels = [r.subkey for r in self._table.find_registrations(CHANNEL, topic, "*")]
        return _json({"channels": channels})

    async def _debug(self, query: str) -> web.Response:
        """Every registration with its producers (nsqlookupd's `/debug`), times in wall ns."""
        now, wall = self._clock(), time.time_ns()

        def wall_ns(at: float) -> int:
            return wall - int((now - at) * 1e9)

        data: dict[str, list[dict[str, Any]]] = {}
        for registration, producers in self._table.entries():
            name = f"{registration.category}:{registration.key}:{registration.subkey}"
            for producer in producers:
                node, info = producer.node, producer.node.info
                tombstoned = producer.tombstoned_at is not None
                data.setdefault(name, []).append(
                    {
                        "id": node.id,
                        "hostname": info.hostname,
                        "broadcast_address": info.broadcast_address,
                        "tcp_port": info.tcp_port,
                        "http_port": info.http_port,
                        "version": info.version,
                        "last_update": wall_ns(node.last_update),
                        "tombstoned": tombstoned,
                        "tombstoned_at": (
                            wall_ns(producer.tombstoned_at)
                            if producer.tombstoned_at is not None
                            else GO_ZERO_TIME_NS
                        ),
                    }
                )
        return _json(data)

    async def _lookup(self, query: str) -> web.Response:
        params = parse_query(query)
        topic = _required(params, "topic")
        if not self._table.find_registrations(TOPIC, topic, ""):
            raise HTTPError(404, "TOPIC_NOT_FOUND")
        channels = [r.subkey for r in self._table.find_registrations(CHANNEL, topic, "*")]
        producers = self._table.active(
            self._table.find_producers(TOPIC, topic, ""),
            self._liveness.inactive_producer_timeout,
            self._liveness.tombstone_lifetime,
        )
        return _json({"channels": channels, "producers": [_peer(p.node) for p in producers]})

    async def _nodes(self, query: str) -> web.Response:
        # Tombstoned nodes stay listed here (with their tombstones), as in nsqlookupd.
        clients = self._table.active(
            self._table.find_producers(CLIENT, "", ""),
            self._liveness.inactive_producer_timeout,
            tombstone_lifetime=0,
        )
        now = self._clock()
        nodes = []
        for client in clients:
            node = client.node
            topics = [r.key for r in self._table.registrations_of(node.id) if r.category == TOPIC]
            tombstones = []
            for topic in topics:
                producer = self._table.producer(Registration(TOPIC, topic), node.id)
                lifetime = self._liveness.tombstone_lifetime
                tombstones.append(producer is not None and producer.is_tombstoned(now, lifetime))
            nodes.append({**_peer(node), "tombstones": tombstones, "topics": topics})
        return _json({"producers": nodes})

    async def _create_topic(self, query: str) -> web.Response:
        params = parse_query(query)
        topic = _required(params, "topic")
        if not is_valid_name(topic):
            raise HTTPError(400, "INVALID_ARG_TOPIC")
        self._table.add_registration(Registration(TOPIC, topic))
        return _empty()

    async def _delete_topic(self, query: str) -> web.Response:
        params = parse_query(query)
        topic = _required(params, "topic")
        for key in self._table.find_registrations(CHANNEL, topic, "*"):
            self._table.remove_registration(key)
        for key in self._table.find_registrations(TOPIC, topic, ""):
            self._table.remove_registration(key)
        return _empty()

    async def _tombstone(self, query: str) -> web.Response:
        params = parse_query(query)
        topic = _required(params, "topic")
        node = _required(params, "node")
        self._table.tombstone(topic, node)
        return _empty()

    async def _create_channel(self, query: str) -> web.Response:
        params = parse_query(query)
        topic, channel = _topic_and_channel(params)
        self._table.add_registration(Registration(CHANNEL, topic, channel))
        self._table.add_registration(Registration(TOPIC, topic))
        return _empty()

    async def _delete_channel(self, query: str) -> web.Response:
        params = parse_query(query)
        topic, channel = _topic_and_channel(params)
        keys = self._table.find_registrations(CHANNEL, topic, channel)
        if not keys:
            raise HTTPError(404, "CHANNEL_NOT_FOUND")
        for key in keys:
            self._table.remove_registration(key)
        return _empty()
