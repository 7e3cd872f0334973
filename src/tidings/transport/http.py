"""Just enough HTTP/1.1 for the client port's plain requests (pages, SSE, tokens).

Requests are parsed from the bytes the port has read; responses are written
whole and the connection is closed, except for streams (SSE) that keep it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from tidings.core.access import ConnectionSlot

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
#: Digits of the longest Content-Length read (more is refused, whatever MAX_BODY is).
_MAX_LENGTH_DIGITS = 18
#: Characters of an HTTP token (RFC 9110 section 5.6.2): method and header names.
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


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
    #: The socket's place among open connections; a handler that takes the
    #: transport over takes this too, and releases it when the socket closes.
    slot: ConnectionSlot | None = None

    @property
    def wants_websocket(self) -> bool:
        return self.headers.get("upgrade", "").lower() == "websocket"

    @property
    def content_length(self) -> int:
        """The body's length from `Content-Length` (checked by `parse_head`)."""
        return int(self.headers.get("content-length", "0").strip() or "0")


def _is_token(text: str) -> bool:
    return bool(text) and all(ord(c) < 128 and ord(c) in _TOKEN for c in text)


def parse_head(head: bytes, peer_ip: str = "") -> HttpRequest:
    """The request line and headers (`head` ends before the blank line).

    Anything malformed raises `BadRequest` (never another exception): a
    request line that is not `METHOD TARGET HTTP/1.x`, a header line without
    a token name, a repeated or non-numeric `Content-Length`, a body framed
    by `Transfer-Encoding` (411), a target that is not a URL path.
    """
    text = head.decode("latin-1")  # decodes any byte
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(400, "bad request line")
    method, target, _ = parts
    if not _is_token(method) or not target:
        raise BadRequest(400, "bad request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _is_token(name):
            raise BadRequest(400, "bad header line")
        key = name.lower()
        if key == "content-length" and key in headers:
            raise BadRequest(400, "repeated Content-Length")
        headers[key] = value.strip(" \t")
    if "transfer-encoding" in headers:
        raise BadRequest(411, "chunked bodies are not accepted; send Content-Length")
    length = headers.get("content-length", "0") or "0"
    if not (length.isascii() and length.isdigit()) or len(length) > _MAX_LENGTH_DIGITS:
        raise BadRequest(400, "bad Content-Length")
    try:
        split = urlsplit(target)
        pairs = parse_qs(split.query, keep_blank_values=True)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host in an absolute URL
        raise BadRequest(400, "bad request target") from None
    query = {k: v[-1] for k, v in pairs.items()}
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
