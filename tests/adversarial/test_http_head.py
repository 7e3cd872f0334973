"""Malformed request heads on the client port of a real server: always a 4xx answer,
never an exception escaping into the event loop ("Fatal error on transport")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adversarial.hostile import assert_no_traceback, http_exchange, status_of
from tests.conftest import ServerProcess, start_server

SSE = b"GET /connection/uni_sse HTTP/1.1\r\nHost: x\r\n"
WS = b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"

BAD_HEADS: dict[str, tuple[bytes, int]] = {
    "content-length superscript two": (SSE + "Content-Length: ²\r\n\r\n".encode(), 400),
    "content-length arabic three": (SSE + "Content-Length: ٣\r\n\r\n".encode(), 400),
    "content-length 5000 digits": (SSE + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n", 400),
    "content-length negative": (SSE + b"Content-Length: -1\r\n\r\n", 400),
    "content-length twice": (SSE + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    "content-length on a websocket": (WS + "Content-Length: ¹\r\n\r\n".encode(), 400),
    "chunked": (SSE + b"Transfer-Encoding: chunked\r\n\r\n", 411),
    "no version": (b"GET /connection/uni_sse\r\n\r\n", 400),
    "http/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    "bad method": (b"G(T / HTTP/1.1\r\n\r\n", 400),
    "empty target": (b"GET  HTTP/1.1\r\n\r\n", 400),
    "unclosed ipv6 host": (b"GET http://[::1/x HTTP/1.1\r\n\r\n", 400),
    "header without colon": (SSE + b"Nonsense\r\n\r\n", 400),
    "space before colon": (SSE + b"Host : x\r\n\r\n", 400),
    "binary garbage": (bytes(range(256)) + b"\r\n\r\n", 400),
    "only the blank line": (b"\r\n\r\n", 400),
    "head too large": (SSE + b"X: " + b"a" * 20_000 + b"\r\n\r\n", 431),
    "body too large": (SSE + b"Content-Length: 999999999\r\n\r\n", 413),
}


@pytest.fixture(scope="module")
def head_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("heads"), {"connection_rate_per_ip": 0})
    yield server
    server.stop()


@pytest.mark.parametrize("name", sorted(BAD_HEADS))
async def test_malformed_head_is_answered_not_raised(head_server: ServerProcess, name: str) -> None:
    request, expected = BAD_HEADS[name]
    answer = await http_exchange(head_server, request)
    assert status_of(answer) == expected, answer
    assert head_server.proc.poll() is None
    assert_no_traceback(head_server)


async def test_a_good_request_after_all_that(head_server: ServerProcess) -> None:
    answer = await http_exchange(head_server, b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(answer) == 404
