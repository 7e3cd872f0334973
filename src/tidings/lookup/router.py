"""Request routing the way nsqlookupd's router (httprouter v1.3.0) answers.

Beyond an exact (method, path) match: a path that differs only by a trailing slash
or by letter case is redirected (301 for GET, 307 otherwise) to the registered one;
OPTIONS answers 200 with `Allow`; a path known under other methods answers 405 with
`Allow`; anything else is 404. The caller renders 404/405 in its own format.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Generic, TypeVar

H = TypeVar("H")


@dataclass(frozen=True, slots=True)
class Found(Generic[H]):
    handler: H


@dataclass(frozen=True, slots=True)
class Redirect:
    status: int
    path: str


@dataclass(frozen=True, slots=True)
class Options:
    allow: str


@dataclass(frozen=True, slots=True)
class NotAllowed:
    allow: str


@dataclass(frozen=True, slots=True)
class NotFound:
    pass


class MethodRouter(Generic[H]):
    """Exact routes per method, resolved with httprouter's fallbacks."""

    def __init__(self, routes: dict[tuple[str, str], H]) -> None:
        self._routes = routes
        self._by_method: dict[str, dict[str, str]] = {}
        for method, path in routes:
            self._by_method.setdefault(method, {})[path.lower()] = path

    def resolve(
        self, method: str, path: str
    ) -> Found[H] | Redirect | Options | NotAllowed | NotFound:
        handler = self._routes.get((method, path))
        if handler is not None:
            return Found(handler)
        paths = self._by_method.get(method)
        if paths is not None and path != "/" and method != "CONNECT":
            status = 301 if method == "GET" else 307
            toggled = path[:-1] if path.endswith("/") else path + "/"
            if (method, toggled) in self._routes:
                return Redirect(status, toggled)
            cleaned = posixpath.normpath(path) if path.startswith("/") else path
            fixed = paths.get(cleaned.lower()) or paths.get(cleaned.lower().rstrip("/"))
            if fixed is not None:
                return Redirect(status, fixed)
        allowed = sorted(m for (m, p) in self._routes if p == path and m != method)
        if method == "OPTIONS":
            allowed = sorted(m for (m, p) in self._routes if p == path)
            if allowed:
                return Options(", ".join(sorted([*allowed, "OPTIONS"])))
        if allowed:
            return NotAllowed(", ".join(sorted([*allowed, "OPTIONS"])))
        return NotFound()
