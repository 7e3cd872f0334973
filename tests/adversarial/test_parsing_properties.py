"""Property-based tests (hypothesis) of what the transport parses itself, and a bounded run
of the mutation fuzzer (`fuzz_transport.py`; its docstring gives the long run)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adversarial import fuzz_transport
from tests.adversarial.fuzz_transport import (
    TARGETS,
    target_close,
    target_frames,
    target_head,
    target_last_event,
    target_port,
)
from tidings.transport.http import BadRequest, parse_head
from tidings.transport.websocket import valid_close_code

PROPERTY = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The targets schedule timers (close lingers), so they run inside a loop."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def run(loop: asyncio.AbstractEventLoop, target: Callable[..., None], *args: Any) -> None:
    async def call() -> None:
        target(*args)

    loop.run_until_complete(call())


# --- request heads -------------------------------------------------------------------------

token = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    min_size=1,
    max_size=12,
)
header_value = st.one_of(
    st.text(max_size=40).map(lambda t: t.replace("\r", "").replace("\n", "")),
    st.sampled_from(["0", "12", "-1", "²", "٣", "9" * 30, " 5 ", "1,2", ""]),
)
header_name = st.one_of(token, st.sampled_from(["Content-Length", "Transfer-Encoding", "Host"]))


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    method = draw(st.one_of(token, st.sampled_from(["GET", "POST", "G T", ""])))
    target = draw(
        st.one_of(
            st.text(max_size=60).map(lambda t: t.replace(" ", "%20")),
            st.sampled_from(["/", "/connection/uni_sse?cf_connect=%7B", "http://[::1/", "*"]),
        )
    )
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1", ""]))
    headers = draw(st.lists(st.tuples(header_name, header_value), max_size=6))
    lines = [f"{method} {target} {version}", *(f"{n}: {v}" for n, v in headers)]
    return "\r\n".join(lines).encode("utf-8", "surrogatepass")


@PROPERTY
@given(st.binary(max_size=2000))
def test_any_bytes_parse_or_raise_bad_request(data: bytes) -> None:
    target_head(data)


@PROPERTY
@given(heads())
def test_heads_parse_or_raise_bad_request(head: bytes) -> None:
    target_head(head)


@PROPERTY
@given(st.sampled_from(["²", "٣", "+1", "1e3", "0x10", "9" * 19, "1 2", "-0"]))
def test_a_content_length_that_is_not_plain_digits_is_400(value: str) -> None:
    head = f"POST / HTTP/1.1\r\nContent-Length: {value}".encode()
    with pytest.raises(BadRequest) as caught:
        parse_head(head)
    assert caught.value.status == 400


@PROPERTY
@given(st.integers(min_value=0, max_value=10**18 - 1))
def test_a_plain_content_length_is_read(value: int) -> None:
    request = parse_head(f"POST / HTTP/1.1\r\nContent-Length: {value}".encode())
    assert request.content_length == value


@PROPERTY
@given(heads(), st.binary(max_size=300), st.lists(st.integers(0, 2500), max_size=4))
def test_the_client_port_answers_or_waits_never_raises(
    loop: asyncio.AbstractEventLoop, head: bytes, body: bytes, cuts: list[int]
) -> None:
    run(loop, target_port, head + b"\r\n\r\n" + body, cuts)


@PROPERTY
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=6))
def test_the_client_port_survives_any_bytes(
    loop: asyncio.AbstractEventLoop, data: bytes, cuts: list[int]
) -> None:
    run(loop, target_port, data, cuts)


# --- WebSocket close payloads and fragments -------------------------------------------------


def test_valid_close_codes_are_those_of_rfc_6455() -> None:
    valid = {code for code in range(65536) if valid_close_code(code)}
    assert valid == {1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)}


@PROPERTY
@given(
    st.one_of(
        st.binary(max_size=125),
        st.integers(0, 65535).map(lambda code: code.to_bytes(2, "big") + b"reason"),
    )
)
def test_close_frames_are_answered_with_a_valid_code(
    loop: asyncio.AbstractEventLoop, payload: bytes
) -> None:
    run(loop, target_close, payload)


@PROPERTY
@given(st.binary(max_size=600))
def test_fragments_assemble_like_the_model(loop: asyncio.AbstractEventLoop, data: bytes) -> None:
    run(loop, target_frames, data)


# --- SSE resumption ------------------------------------------------------------------------


@PROPERTY
@given(st.text(max_size=40), st.binary(max_size=200))
def test_last_event_id_raises_only_value_error(last_event: str, raw: bytes) -> None:
    target_last_event(last_event.replace("\n", "").encode("utf-8", "surrogatepass") + b"\n" + raw)


# --- the fuzzer, bounded -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target_bounded_run(name: str) -> None:
    assert fuzz_transport.fuzz(name, 5000, seed=7) == 5000
