"""HTTP routes of the chat room demo on the client port: the page, its files, and tokens.

`/demo/token?user=NAME` signs a connection token with the node's
`token_hmac_secret`, so anyone who can open the page can chat: that is what a
demo is for, and why these routes exist only when `demo` is on.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import jwt
import msgspec

from tidings.settings import Settings
from tidings.transport.http import HttpRequest, respond
from tidings.transport.port import HttpHandler

if TYPE_CHECKING:
    from tidings.transport.websocket import ClientPortRouter

STATIC_DIR = Path(__file__).parent / "static"
#: Where scripts/vendor-sdk.sh copies the npm `centrifuge` SDK's browser builds.
VENDOR_DIR = STATIC_DIR / "vendor"
TOKEN_PATH = "/demo/token"
#: Seconds a demo token lives; the page asks for a new one when it expires.
TOKEN_TTL = 3600
#: Names people may pick: what shows in the room, kept short and plain. A name is
#: also the user id and part of its personal channel (`#name`), whose grammar has
#: no room for spaces, commas or `#`: such a name could never connect (3500).
USER_NAME = re.compile(r"^[\w.\-]{1,32}$")
NAME_RULE = "user: 1-32 letters, digits, '.', '_' or '-' (no spaces)"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
#: Client-port path -> file under STATIC_DIR.
FILES = {
    "/": "index.html",
    "/static/chat.js": "chat.js",
    "/static/chat.css": "chat.css",
    "/static/centrifuge.js": "vendor/centrifuge.js",
    "/static/centrifuge.protobuf.js": "vendor/centrifuge.protobuf.js",
}
_NO_CACHE = {"Cache-Control": "no-cache"}


def install(router: ClientPortRouter, settings: Settings) -> None:
    """Serve the demo's routes on the client port (call only when `settings.demo`)."""
    for path, name in FILES.items():
        router.add_http(path, file_handler(STATIC_DIR / name))
    router.add_http(TOKEN_PATH, token_handler(settings))


def file_handler(path: Path) -> HttpHandler:
    """Serve one file, read on each request (the vendor SDK may be copied in later)."""
    content_type = _TYPES.get(path.suffix, "application/octet-stream")

    def handle(request: HttpRequest, transport: asyncio.Transport) -> None:
        if request.method not in ("GET", "HEAD"):
            respond(transport, 405, b"GET only\n", headers={"Allow": "GET, HEAD"})
            return
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            message = f"{path.name} is not installed: run scripts/vendor-sdk.sh (needs npm)\n"
            respond(transport, 404, message.encode())
            return
        respond(transport, 200, b"" if request.method == "HEAD" else body, content_type, _NO_CACHE)

    return handle


def token_handler(settings: Settings) -> HttpHandler:
    """`GET /demo/token?user=NAME` -> `{"token": "<JWT for NAME>"}`."""

    def handle(request: HttpRequest, transport: asyncio.Transport) -> None:
        if request.method != "GET":
            respond(transport, 405, b"GET only\n", headers={"Allow": "GET"})
            return
        user = request.query.get("user", "").strip()
        if not USER_NAME.fullmatch(user):
            _json(transport, 400, {"error": NAME_RULE})
            return
        secret = settings.token_hmac_secret
        if not secret:
            _json(transport, 503, {"error": "the node has no token_hmac_secret to sign with"})
            return
        now = int(time.time())
        claims: dict[str, object] = {"sub": user, "iat": now, "exp": now + TOKEN_TTL}
        if settings.token_audience:
            claims["aud"] = settings.token_audience
        if settings.token_issuer:
            claims["iss"] = settings.token_issuer
        _json(transport, 200, {"token": jwt.encode(claims, secret, algorithm="HS256")})

    return handle


def _json(transport: asyncio.Transport, status: int, body: dict[str, str]) -> None:
    respond(
        transport, status, msgspec.json.encode(body), "application/json; charset=utf-8", _NO_CACHE
    )
