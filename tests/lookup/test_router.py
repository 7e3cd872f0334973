"""Route resolution with httprouter's fallbacks (redirects, OPTIONS, 405 with Allow)."""

from __future__ import annotations

from tidings.lookup.router import Found, MethodRouter, NotAllowed, NotFound, Options, Redirect

ROUTER: MethodRouter[str] = MethodRouter(
    {("GET", "/lookup"): "lookup", ("POST", "/topic/create"): "create", ("GET", "/a/b"): "ab"}
)


def test_exact_match() -> None:
    assert ROUTER.resolve("GET", "/lookup") == Found("lookup")
    assert ROUTER.resolve("POST", "/topic/create") == Found("create")


def test_trailing_slash_and_case_redirect_within_the_method() -> None:
    assert ROUTER.resolve("GET", "/lookup/") == Redirect(301, "/lookup")
    assert ROUTER.resolve("GET", "/LookUp") == Redirect(301, "/lookup")
    assert ROUTER.resolve("GET", "/a/../a/B") == Redirect(301, "/a/b")
    assert ROUTER.resolve("POST", "/topic/create/") == Redirect(307, "/topic/create")
    # only among the method's own routes
    assert ROUTER.resolve("GET", "/topic/create/") == NotFound()


def test_options_and_method_not_allowed() -> None:
    assert ROUTER.resolve("OPTIONS", "/lookup") == Options("GET, OPTIONS")
    assert ROUTER.resolve("OPTIONS", "/nope") == NotFound()
    assert ROUTER.resolve("POST", "/lookup") == NotAllowed("GET, OPTIONS")
    assert ROUTER.resolve("DELETE", "/topic/create") == NotAllowed("OPTIONS, POST")
    assert ROUTER.resolve("GET", "/") == NotFound()
