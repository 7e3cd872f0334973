"""Request ids on the API port: `X-Request-Id` honoured (if sane) or generated.

The id is set for the whole call (every log record of it carries it, see
`tidings.logs`), returned in the response's `X-Request-Id` header, and one
debug-level line per call logs method, status and duration with it.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from tidings.logs import request_id

log = logging.getLogger("tidings.api.access")

HEADER = "X-Request-Id"
#: What a client-given id may look like; anything else is replaced (log injection).
_SANE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def install(app: web.Application) -> None:
    """Run every request of `app` under a request id (outermost middleware)."""
    app.middlewares.insert(0, _with_request_id)


@web.middleware
async def _with_request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(HEADER, "")
    rid = given if _SANE.match(given) else uuid.uuid4().hex
    token = request_id.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers[HEADER] = rid
            status = exc.status
            raise
        response.headers[HEADER] = rid
        status = response.status
        return response
    finally:
        if log.isEnabledFor(logging.DEBUG):
            elapsed = (time.perf_counter() - started) * 1000
            log.debug("%s %s -> %d in %.1f ms", request.method, request.path, status, elapsed)
        request_id.reset(token)
