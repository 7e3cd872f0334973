"""nsqd's HTTP API (port 4151): publish, topic and channel admin, ping, info, stats.

Answers follow nsqd 1.x: `OK` as text on success, JSON for data, and errors as
`{"message": "CODE"}` with nsqd's status codes (400 MISSING_ARG_TOPIC,
INVALID_TOPIC, 413 MSG_TOO_BIG, 404 TOPIC_NOT_FOUND, ...). A publish that the
queue cannot take (disk or retention full, replica down) is a 503 with the
reason, never a silent success.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Collection
from typing import Any

import msgspec
from aiohttp import web

from tidings.protocol.nsq.names import is_valid_name
from tidings.queue.channel import Channel
from tidings.queue.node import PublishError, QueueNode
from tidings.queue.settings import VERSION
from tidings.queue.topic import Topic

log = logging.getLogger(__name__)

_HEADERS = {"X-NSQ-Content-Type": "nsq; version=1.0"}
_LENGTH = struct.Struct(">i")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=msgspec.json.encode({"message": message}),
        content_type="application/json",
        charset="utf-8",
        headers=_HEADERS,
    )


def _ok(text: str = "OK") -> web.Response:
    return web.Response(text=text, headers=_HEADERS)


def _json(data: Any) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(data),
        content_type="application/json",
        charset="utf-8",
        headers=_HEADERS,
    )


class HttpApi:
    """The aiohttp application of one queue node."""

    def __init__(
        self, node: QueueNode, tcp_port: int = 0, connections: Collection[Any] = ()
    ) -> None:
        self.node = node
        self.connections = connections
        self.tcp_port = tcp_port
        self.http_port = 0
        app = web.Application(client_max_size=node.settings.max_body_size + 1)
        app.middlewares.append(self._errors)
        routes = [
            web.get("/ping", self.ping),
            web.get("/info", self.info),
            web.get("/stats", self.stats),
            web.post("/pub", self.pub),
            web.put("/pub", self.pub),
            web.post("/mpub", self.mpub),
            web.put("/mpub", self.mpub),
            web.post("/dpub", self.pub),
        ]
        for action in ("create", "delete", "empty", "pause", "unpause"):
            routes.append(web.post(f"/topic/{action}", self._topic_action(action)))
            routes.append(web.post(f"/channel/{action}", self._channel_action(action)))
        app.add_routes(routes)
        self.app = app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except ApiError as exc:
            return _error(exc.status, exc.message)
        except web.HTTPRequestEntityTooLarge:
            return _error(413, "BODY_TOO_BIG")
        except web.HTTPException as exc:
            return _error(exc.status, exc.reason.upper().replace(" ", "_"))
        except Exception:  # one request's failure is answered, never raised further
            log.exception("HTTP %s %s failed", request.method, request.path)
            return _error(500, "INTERNAL_ERROR")

    # -- helpers -------------------------------------------------------------

    def _topic_name(self, request: web.Request) -> str:
        name = request.query.get("topic")
        if name is None:
            raise ApiError(400, "MISSING_ARG_TOPIC")
        if not is_valid_name(name):
            raise ApiError(400, "INVALID_TOPIC")
        return name

    def _existing_topic(self, request: web.Request) -> Topic:
        name = request.query.get("topic")
        if name is None:
            raise ApiError(400, "MISSING_ARG_TOPIC")
        topic = self.node.topics.get(name)
        if topic is None:
            raise ApiError(404, "TOPIC_NOT_FOUND")
        return topic

    def _topic_and_channel(self, request: web.Request) -> tuple[Topic, str]:
        """nsqd's order: both names checked (400), then the topic must exist (404)."""
        topic_name = request.query.get("topic")
        if topic_name is None:
            raise ApiError(400, "MISSING_ARG_TOPIC")
        if not is_valid_name(topic_name):
            raise ApiError(400, "INVALID_ARG_TOPIC")
        name = request.query.get("channel")
        if name is None:
            raise ApiError(400, "MISSING_ARG_CHANNEL")
        if not is_valid_name(name):
            raise ApiError(400, "INVALID_ARG_CHANNEL")
        topic = self.node.topics.get(topic_name)
        if topic is None:
            raise ApiError(404, "TOPIC_NOT_FOUND")
        return topic, name

    async def _read_body(self, request: web.Request, limit: int, too_big: str) -> bytes:
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, too_big)
        body = await request.content.read(limit + 1)
        if len(body) > limit:
            raise ApiError(413, too_big)
        return body

    async def _publish(self, name: str, bodies: list[bytes], defer_ms: int = 0) -> web.Response:
        try:
            pending = self.node.publish(name, bodies, defer_ms)
            if pending is not None:
                await pending
        except PublishError as exc:
            raise ApiError(503, f"PUB_FAILED {exc}") from None
        return _ok()

    # -- publishing ----------------------------------------------------------

    async def pub(self, request: web.Request) -> web.Response:
        settings = self.node.settings
        body = await self._read_body(request, settings.max_msg_size, "MSG_TOO_BIG")
        if not body:
            raise ApiError(400, "MSG_EMPTY")
        name = self._topic_name(request)
        defer = 0
        if "defer" in request.query:
            try:
                defer = int(request.query["defer"])
            except ValueError:
                raise ApiError(400, "INVALID_DEFER") from None
            if not 0 <= defer <= settings.max_req_timeout_ms:
                raise ApiError(400, "INVALID_DEFER")
        return await self._publish(name, [body], defer)

    async def mpub(self, request: web.Request) -> web.Response:
        settings = self.node.settings
        body = await self._read_body(request, settings.max_body_size, "BODY_TOO_BIG")
        name = self._topic_name(request)
        binary = request.query.get("binary", "false") not in ("false", "0", "")
        bodies = self._binary_bodies(body) if binary else self._line_bodies(body)
        if not bodies:
            self.node.topic(name)  # nsqd creates the topic and publishes nothing
            return _ok()
        return await self._publish(name, bodies)

    def _line_bodies(self, body: bytes) -> list[bytes]:
        limit = self.node.settings.max_msg_size
        bodies = [line for line in body.split(b"\n") if line]
        if any(len(line) > limit for line in bodies):
            raise ApiError(413, "MSG_TOO_BIG")
        return bodies

    def _binary_bodies(self, body: bytes) -> list[bytes]:
        limit = self.node.settings.max_msg_size
        if len(body) < 4:
            raise ApiError(413, "BAD_BODY")
        (count,) = _LENGTH.unpack_from(body)
        if count <= 0 or count > (self.node.settings.max_body_size - 4) // 5:
            raise ApiError(413, "BAD_BODY")
        bodies: list[bytes] = []
        offset = 4
        for _ in range(count):
            if len(body) - offset < 4:
                raise ApiError(413, "BAD_MESSAGE")
            (size,) = _LENGTH.unpack_from(body, offset)
            offset += 4
            if size <= 0 or len(body) - offset < size:
                raise ApiError(413, "BAD_MESSAGE")
            if size > limit:
                raise ApiError(413, "MSG_TOO_BIG")
            bodies.append(body[offset : offset + size])
            offset += size
        return bodies

    # -- administration ------------------------------------------------------

    def _topic_action(self, action: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            node = self.node
            if action == "create":
                node.topic(self._topic_name(request))
                return _ok("")
            if action == "empty":
                self._topic_name(request)  # nsqd checks the name here (400 INVALID_TOPIC)
            topic = self._existing_topic(request)
            if action == "delete":
                node.delete_topic(topic.name)
            elif action == "empty":
                topic.empty()
            else:
                topic.pause(action == "pause")
            return _ok("")

        return handler

    def _channel_action(self, action: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            node = self.node
            topic, name = self._topic_and_channel(request)
            if action == "create":
                channel = node.channel(topic, name)
                if "max_attempts" in request.query:
                    try:
                        channel.progress.max_attempts = max(int(request.query["max_attempts"]), 0)
                    except ValueError:
                        raise ApiError(400, "INVALID_MAX_ATTEMPTS") from None
                    channel.checkpoint()
                return _ok("")
            existing = topic.channels.get(name)
            if existing is None:
                raise ApiError(404, "CHANNEL_NOT_FOUND")
            channel = existing
            if action == "delete":
                node.delete_channel(topic, name)
            elif action == "empty":
                channel.empty()
            else:
                channel.pause(action == "pause")
                channel.checkpoint()
            return _ok("")

        return handler

    # -- information ---------------------------------------------------------

    async def ping(self, request: web.Request) -> web.Response:
        return _ok("OK")

    async def info(self, request: web.Request) -> web.Response:
        settings = self.node.settings
        return _json(
            {
                "version": VERSION,
                "broadcast_address": settings.broadcast_address or socket.gethostname(),
                "hostname": socket.gethostname(),
                "http_port": self.http_port,
                "tcp_port": self.tcp_port,
                "start_time": self.node.start_time,
                "max_heartbeat_interval": int(settings.max_heartbeat_interval * 1e9),
                "max_output_buffer_size": 64 * 1024,
                "max_output_buffer_timeout": int(30 * 1e9),
                "max_deflate_level": 6,
            }
        )

    async def stats(self, request: web.Request) -> web.Response:
        topic_filter = request.query.get("topic", "")
        channel_filter = request.query.get("channel", "")
        clients = request.query.get("include_clients", "true") not in ("false", "0")
        topics = [
            _topic_stats(topic, channel_filter, clients)
            for name, topic in sorted(self.node.topics.items())
            if not topic_filter or name == topic_filter
        ]
        data = {
            "version": VERSION,
            "health": "OK",
            "start_time": self.node.start_time,
            "topics": topics or None,  # nsqd: null when there are none
            # nsqd: connections that published, with their counts per topic (null if none)
            "producers": [_producer_stats(c) for c in self.connections if c.published] or None,
            "disk_bytes": self.node.disk_bytes,
            "pid": os.getpid(),
        }
        if request.query.get("format") == "json":
            return _json(data)
        return _ok(_stats_text(topics))


def _client_stats(consumer: Any) -> dict[str, Any]:
    client = consumer.client
    return {
        "client_id": client.client_id,
        "hostname": client.hostname,
        "version": "V2",
        "remote_address": consumer.remote_address,
        "state": int(consumer.state),
        "ready_count": consumer.rdy,
        "in_flight_count": consumer.in_flight,
        "message_count": consumer.message_count,
        "finish_count": consumer.finish_count,
        "requeue_count": consumer.requeue_count,
        "connect_ts": consumer.connect_ts,
        "sample_rate": 0,
        "deflate": False,
        "snappy": False,
        "user_agent": client.user_agent,
        "tls": False,
    }


def _producer_stats(connection: Any) -> dict[str, Any]:
    stats = _client_stats(connection)
    stats["pub_counts"] = [
        {"topic": topic, "count": count} for topic, count in sorted(connection.published.items())
    ]
    return stats


def _channel_stats(channel: Channel, clients: bool) -> dict[str, Any]:
    return {
        "channel_name": channel.name,
        "depth": channel.depth,
        "backend_depth": channel.backend_depth,
        "in_flight_count": len(channel.in_flight),
        "deferred_count": len(channel.deferred),
        "message_count": channel.message_count,
        "requeue_count": channel.requeue_count,
        "timeout_count": channel.timeout_count,
        "client_count": len(channel.consumers),
        "clients": [_client_stats(c) for c in channel.consumers.values()] if clients else [],
        "paused": channel.paused,
        "max_attempts": channel.max_attempts,
        "e2e_processing_latency": {"count": 0, "percentiles": None},
    }


def _topic_stats(topic: Topic, channel_filter: str, clients: bool) -> dict[str, Any]:
    return {
        "topic_name": topic.name,
        "channels": [
            _channel_stats(channel, clients)
            for name, channel in sorted(topic.channels.items())
            if not channel_filter or name == channel_filter
        ],
        "depth": topic.depth,
        "backend_depth": topic.depth,
        "message_count": topic.message_count,
        "message_bytes": topic.message_bytes,
        "paused": topic.paused,
        "e2e_processing_latency": {"count": 0, "percentiles": None},
    }


def _stats_text(topics: list[dict[str, Any]]) -> str:
    lines = [f"tidings queue (nsqd {VERSION} compatible)", ""]
    if not topics:
        lines.append("Topics: None")
    for topic in topics:
        lines.append(
            f"[{topic['topic_name']:<15}] depth: {topic['depth']:<5} msgs: {topic['message_count']}"
        )
        for channel in topic["channels"]:
            lines.append(
                f"    [{channel['channel_name']:<25}] depth: {channel['depth']:<5} "
                f"inflt: {channel['in_flight_count']:<4} def: {channel['deferred_count']:<4} "
                f"re-q: {channel['requeue_count']:<5} timeout: {channel['timeout_count']:<5} "
                f"msgs: {channel['message_count']}"
            )
    return "\n".join(lines) + "\n"
