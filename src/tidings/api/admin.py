"""The admin web UI on the API port: `/admin`, on only with `admin_password` and `admin_secret`.

- `GET /admin` and `GET /admin/static/<file>`: the page and its script and
  styles, shipped in the package (no CDN).
- `POST /admin/login` `{"password"}` -> `{"token", "expires_at"}`: a
  short-lived session token signed with `admin_secret` (HMAC-SHA256).
  Logins spend a token bucket: guessing is slowed to one try a second.
- `POST /admin/api/<method>` with `Authorization: token <token>`: a few
  server API methods (`ADMIN_METHODS`) plus `stats` (counters for the live
  charts). Anything without a valid, unexpired token gets 401.

The API key is never sent to the browser: the UI has its own credentials
and reaches only the methods listed here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from tidings.api.methods import ServerApi
from tidings.core.node import Node
from tidings.core.ratelimit import TokenBucket
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode
from tidings.settings import Settings, admin_enabled

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "admin_static"
FILES = {
    "admin.js": "text/javascript; charset=utf-8",
    "admin.css": "text/css; charset=utf-8",
}
#: Server API methods the UI may call.
ADMIN_METHODS = frozenset(
    {
        "info",
        "channels",
        "publish",
        "presence_stats",
        "history",
        "user_connections",
        "disconnect",
        "delivery_status",
    }
)
_encoder = msgspec.json.Encoder()


def _json(payload: object, status: int = 200) -> web.Response:
    response = web.Response(
        body=_encoder.encode(payload), status=status, content_type="application/json"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _refused(status: int, message: str) -> web.Response:
    code = ErrorCode.UNAUTHORIZED if status == 401 else ErrorCode.TOO_MANY_REQUESTS
    return _json({"error": {"code": int(code), "message": message}}, status)


class AdminTokens:
    """Session tokens `<expires_at>.<nonce>.<signature>` signed with the admin secret."""

    def __init__(self, secret: str, ttl: float) -> None:
        self._key = hashlib.sha256(b"tidings admin\x00" + secret.encode()).digest()
        self.ttl = ttl

    def issue(self, now: float | None = None) -> tuple[str, int]:
        expires_at = int((now or time.time()) + self.ttl)
        body = f"{expires_at}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._sign(body)}", expires_at

    def valid(self, token: str, now: float | None = None) -> bool:
        body, _, signature = token.rpartition(".")
        if not body or not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            return False
        expires, _, _ = body.partition(".")
        return expires.isdigit() and int(expires) > (now or time.time())

    def _sign(self, body: str) -> str:
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")


class AdminUi:
    """The routes of the admin web UI."""

    def __init__(self, node: Node, api: ServerApi, settings: Settings) -> None:
        self.node = node
        self.api = api
        self._password = settings.admin_password.encode()
        self.tokens = AdminTokens(settings.admin_secret, settings.admin_token_ttl)
        self._attempts = TokenBucket(1.0, 10, time.monotonic())

    @staticmethod
    def enabled(settings: Settings) -> bool:
        return admin_enabled(settings)

    def install(self, app: web.Application) -> None:
        app.router.add_get("/admin", self._page)
        app.router.add_get("/admin/", self._page)
        app.router.add_get("/admin/static/{name}", self._static)
        app.router.add_post("/admin/login", self._login)
        app.router.add_post("/admin/api/{method}", self._call)

    async def _page(self, request: web.Request) -> web.Response:
        response = web.Response(
            body=(STATIC_DIR / "index.html").read_bytes(), content_type="text/html"
        )
        # The page runs only its own files: no inline scripts, no third-party origins.
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
        )
        response.headers["X-Frame-Options"] = "DENY"
        return response

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in FILES:
            raise web.HTTPNotFound()
        return web.Response(
            body=(STATIC_DIR / name).read_bytes(), headers={"Content-Type": FILES[name]}
        )

    async def _login(self, request: web.Request) -> web.Response:
        try:
            body = msgspec.json.decode(await request.read(), type=dict[str, str])
        except (msgspec.DecodeError, msgspec.ValidationError):
            return _json({"error": {"code": 107, "message": 'expected {"password": ...}'}}, 400)
        # Every attempt spends a token before the password is looked at: guessing is
        # slowed to one try a second after a burst of ten.
        if not self._attempts.take(time.monotonic()):
            return _refused(429, "too many logins; wait a little")
        given = body.get("password", "").encode()
        if hmac.compare_digest(given, self._password):
            token, expires_at = self.tokens.issue()
            return _json({"token": token, "expires_at": expires_at})
        log.warning("admin UI: failed login from %s", request.remote)
        return _refused(401, "wrong password")

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "token" and self.tokens.valid(token.strip())

    async def _call(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _refused(401, "log in again")
        method = request.match_info["method"]
        body = await request.read()
        if method == "stats":
            return _json({"result": self.stats()})
        if method not in ADMIN_METHODS:
            return _json({"error": {"code": 104, "message": f"not an admin method: {method}"}}, 404)
        try:
            result = await self.api.call(method, self.api.decode(method, body))
        except ReplyError as exc:
            return _json({"error": {"code": exc.code, "message": exc.info.message}})
        return _json({"result": result})

    def stats(self) -> dict[str, Any]:
        """Counters for the live charts (the browser turns them into rates)."""
        node, traffic = self.node, self.node.traffic
        return {
            "time": time.time(),
            **node.stats(),
            "connects": node.counters["connects"],
            "publications": node.counters["publications"],
            "deliveries": traffic.deliveries,
            "bytes_in": traffic.bytes_in,
            "bytes_out": traffic.bytes_out + node.batches.bytes_out,
            "proxy_calls": sum(node.upstream.http.calls.values()),
            "proxy_errors": sum(node.upstream.http.failures.values()),
        }
