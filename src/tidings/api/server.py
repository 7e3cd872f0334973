"""The API port: `POST /api/<method>` with an API key, and `GET /health`.

The key is checked from the headers before a byte of the body is read (401
at once), and a body must arrive within `api_body_timeout` (408, and the
connection is closed) and within `api_max_body_size` bytes (413): a caller
without the key, or a slow one, holds next to nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

import msgspec
from aiohttp import web

from tidings.api.methods import MissingField, ServerApi
from tidings.core.node import Node
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()


class _LegacyEnvelope(msgspec.Struct):
    """`POST /api` body: `{"method": ..., "params": {...}}`."""

    method: str = ""
    params: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))


_LEGACY_DECODER = msgspec.json.Decoder(_LegacyEnvelope)


def _json(payload: object, status: int = 200) -> web.Response:
    return web.Response(
        body=_encoder.encode(payload), status=status, content_type="application/json"
    )


def _error(code: ErrorCode, message: str, status: int) -> web.Response:
    return _json({"error": {"code": int(code), "message": message}}, status)


def _unauthorised() -> web.Response:
    response = _error(ErrorCode.UNAUTHORIZED, "missing or wrong API key", 401)
    # The body was not read: the connection cannot carry another request.
    response.force_close()
    return response


@web.middleware
async def _json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own refusals (404, 405, 413) in the API's JSON error envelope."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = ErrorCode.METHOD_NOT_FOUND if exc.status in (404, 405) else ErrorCode.BAD_REQUEST
        return _error(code, exc.reason.lower(), exc.status)
    return response


class ApiServer:
    """The aiohttp application behind the API port."""

    def __init__(self, node: Node, api_key: str, insecure: bool = False) -> None:
        self.api = ServerApi(node)
        self._key = api_key.encode()
        self._insecure = insecure
        self._body_timeout = node.settings.api_body_timeout
        self.app = web.Application(
            client_max_size=node.settings.api_max_body_size, middlewares=[_json_errors]
        )
        self.app.router.add_post("/api/{method}", self._handle)
        self.app.router.add_post("/api", self._handle_legacy)
        self.app.router.add_get("/health", self._health)

    def _authorised(self, request: web.Request) -> bool:
        if self._insecure:
            return True
        given = request.headers.get("X-API-Key", "")
        if not given:
            scheme, _, value = request.headers.get("Authorization", "").partition(" ")
            given = value.strip() if scheme.lower() == "apikey" else ""
        return bool(given) and hmac.compare_digest(given.encode(), self._key)

    async def _read_body(self, request: web.Request) -> bytes | web.Response:
        """The body, or the response refusing the request: 401 before reading, 408 when slow."""
        if not self._authorised(request):
            return _unauthorised()
        try:
            async with asyncio.timeout(self._body_timeout):
                return await request.read()
        except TimeoutError:
            response = _error(ErrorCode.BAD_REQUEST, "request body not received in time", 408)
            response.force_close()
            return response

    async def _handle(self, request: web.Request) -> web.Response:
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        return await self._dispatch(request, request.match_info["method"], body)

    async def _handle_legacy(self, request: web.Request) -> web.Response:
        """`POST /api` with `{"method": ..., "params": {...}}` (older Centrifugo clients)."""
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            envelope = _LEGACY_DECODER.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            problem = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
            return _error(ErrorCode.BAD_REQUEST, f"body is not a JSON object: {problem}", 400)
        return await self._dispatch(request, envelope.method, bytes(envelope.params))

    async def _dispatch(self, request: web.Request, method: str, body: bytes) -> web.Response:
        try:
            decoded = self.api.decode(method, body)
        except MissingField as exc:
            return _json({"error": {"code": exc.code, "message": exc.info.message}})
        except ReplyError as exc:
            status = 404 if exc.code == ErrorCode.METHOD_NOT_FOUND else 400
            return _error(ErrorCode(exc.code), exc.info.message, status)
        try:
            result = await self.api.call(method, decoded)
        except ReplyError as exc:
            return _json({"error": {"code": exc.code, "message": exc.info.message}})
        except Exception:
            log.exception("API %s failed", method)
            return _error(ErrorCode.INTERNAL, "internal server error", 500)
        if method == "batch":
            # Centrifugo's BatchResponse is `{"replies": [...]}`, unwrapped; `cent` reads it so.
            return _json(result)
        return _json({"result": result})

    async def _health(self, request: web.Request) -> web.Response:
        return _json({})
