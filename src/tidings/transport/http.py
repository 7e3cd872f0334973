"""Just enough HTTP/1.1 for the client port's plain requests (pages, SSE, tokens).

Requests are parsed from the bytes the port has read; responses are written
whole and the connection is closed, except for streams (SSE) that keep it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus
from typing import cast
from urllib.parse import parse_qs, urlsplit

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024


class BadRequest(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    peer_ip: str = ""
    body: bytes = b""

    @property
    def wants_websocket(self) -> bool:
        return self.headers.get("upgrade", "").lower() == "websocket"

    @property
    def content_length(self) -> int:
        value = self.headers.get("content-length", "0").strip() or "0"
        if not value.isdigit():
            raise BadRequest(400, "bad Content-Length")
        return int(value)


def parse_head(head: bytes, peer_ip: str = "") -> HttpRequest:
    """The request line and headers (`head` ends before the blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
        raise BadRequest(400, "undecodable request") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "bad request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "bad header line")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise BadRequest(411, "chunked bodies are not accepted; send Content-Length")
    split = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
    return HttpRequest(method, target, split.path or "/", query, headers, peer_ip)


def response_bytes(
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    headers: dict[str, str] | None = None,
    keep_open: bool = False,
) -> bytes:
    reason = HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}"]
    if not keep_open:
        lines += [f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def respond(
    transport: asyncio.BaseTransport,
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> None:
    """Write a whole response and close the connection."""
    writer = cast(asyncio.WriteTransport, transport)  # uvloop's transports are not subclasses
    writer.write(response_bytes(status, body, content_type, headers))
    writer.close()
