"""Fuzz targets for what the transport parses itself, and a mutation fuzzer to drive them.

Targets (each takes arbitrary bytes; an `AssertionError` or any other
exception is a finding):

- `head`: `parse_head` returns a request or raises `BadRequest`, nothing else;
- `port`: the client port protocol fed the bytes in random chunks never
  raises, and either waits, answers one HTTP status, or hands the request on;
- `close`: a close frame with the bytes as payload is answered with the
  echoed code, 1000 (empty) or 1002 (a code a peer may not send);
- `frames`: the bytes read as a sequence of data/continuation/ping frames
  (opcode, fin, length from each byte triple) go through `WebSocketSession`:
  complete messages reach the client whole and in order, a fragmented
  message never holds more than `client_max_message_size`, and anything
  malformed ends in close 1002/1009;
- `last_event`: `Last-Event-ID` and `cf_connect` for SSE resumption raise
  only `ValueError`.

`make test` runs each target for a few thousand inputs (test_fuzz.py). The
long run, for a million inputs or more:

    .venv/bin/python -m tests.adversarial.fuzz_transport --count 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import struct
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from picows import WSMsgType
from picows.picows import _make_test_ws_frame  # type: ignore[attr-defined]

from tidings.core.access import AccessPolicy
from tidings.settings import Settings
from tidings.transport.http import BadRequest, HttpRequest, parse_head
from tidings.transport.port import ClientPortProtocol
from tidings.transport.sse import _with_last_event
from tidings.transport.websocket import WebSocketSession, valid_close_code

SETTINGS = Settings(connection_rate_per_ip=0, client_connections_per_ip=0)
MAX_MESSAGE = 4096
STATUSES = {400, 403, 404, 408, 411, 413, 426, 429, 431, 503}


class FakeSocket:
    """What the client port and `drop_later` use of an asyncio transport."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closing = False
        self.protocol: Any = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data: bytes) -> None:
        assert not self.closing, "write after close"
        self.written += data

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol


class FakeWebSocket:
    """What `WebSocketSession` uses of picows' `WSTransport`."""

    def __init__(self) -> None:
        self.underlying_transport = FakeSocket()
        self.is_close_frame_sent = False
        self.is_disconnected = False
        self.closes: list[int] = []
        self.pongs: list[bytes] = []

    def send_close(self, code: Any, message: Any = None) -> None:
        self.closes.append(int(code.value if hasattr(code, "value") else code))
        self.is_close_frame_sent = True

    def send_pong(self, payload: bytes) -> None:
        self.pongs.append(payload)

    def send(self, msg_type: Any, data: bytes) -> None:
        pass

    def disconnect(self, graceful: bool = True) -> None:
        self.is_disconnected = True


class FakeClient:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def handle_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def transport_closed(self) -> None:
        pass

    def resume(self) -> None:
        pass


def session(
    max_message: int = MAX_MESSAGE, settings: Settings = SETTINGS
) -> tuple[WebSocketSession, FakeWebSocket, FakeClient]:
    """A WebSocket session on fakes of picows' transport and of the node's client."""
    node = SimpleNamespace(settings=settings)
    ws_session = WebSocketSession(node, max_message)  # type: ignore[arg-type]
    ws, client = FakeWebSocket(), FakeClient()
    ws_session._ws = ws  # type: ignore[assignment]
    ws_session._client = client  # type: ignore[assignment]
    return ws_session, ws, client


# --- targets -----------------------------------------------------------------------------


def target_head(data: bytes) -> None:
    try:
        request = parse_head(data)
    except BadRequest as exc:
        assert exc.status in STATUSES, exc.status
        return
    assert isinstance(request, HttpRequest)
    assert request.content_length >= 0
    assert request.path.startswith("/") or request.path
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in request.query.items())


def target_port(data: bytes, cuts: list[int] | None = None) -> None:
    handed: list[str] = []
    access = AccessPolicy(SETTINGS)
    routes = {"/connection/uni_sse": lambda request, transport: handed.append("sse")}
    protocol = ClientPortProtocol(access, lambda slot: _Refuse(), routes, SETTINGS)
    sock = FakeSocket()
    sock.protocol = protocol
    protocol.connection_made(sock)
    positions = sorted({0, len(data), *(cuts or [])})
    try:
        for start, end in itertools.pairwise(positions):
            protocol.data_received(data[start:end])
    except _Handed:
        return  # a WebSocket upgrade reached picows' side
    finally:
        protocol.connection_lost(None)
    assert access.open.total == 0, "a slot was not given back"
    if sock.written:
        assert sock.written.startswith(b"HTTP/1.1 "), bytes(sock.written[:40])
        status = int(sock.written[9:12])
        assert status in STATUSES, status
        assert sock.closing
        assert not handed
    elif handed:
        assert not sock.closing


class _Handed(Exception):
    pass


class _Refuse:
    """Stands in for picows: the hand-over happened, which is all the target checks."""

    def connection_made(self, transport: Any) -> None:
        raise _Handed


def target_close(data: bytes) -> None:
    payload = data[:125]
    ws_session, ws, _ = session()
    frame = _make_test_ws_frame(WSMsgType.CLOSE, payload, True, False)
    ws_session.on_ws_frame(ws, frame)  # type: ignore[arg-type]
    assert ws.is_disconnected
    if not payload:
        assert ws.closes == [1000]
        return
    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 0
    assert ws.closes == [code if valid_close_code(code) else 1002], (code, ws.closes)


_OPCODES = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION, WSMsgType.PING)


def target_frames(data: bytes) -> None:
    """Every 3 bytes a frame: opcode, flags (fin, rsv1, x17 length), length byte.

    The session must behave like this model of RFC 6455 fragmentation with
    the fragment cost: complete messages delivered whole and in order, 1002
    for reserved bits or a broken sequence, 1009 once a message costs more
    than the limit.
    """
    ws_session, ws, client = session()
    expected: list[bytes] = []
    message: bytearray | None = None
    cost = 0
    close: int | None = None
    for i in range(0, len(data) - 2, 3):
        opcode = _OPCODES[data[i] % len(_OPCODES)]
        flags = data[i + 1]
        fin = bool(flags & 1) or opcode is WSMsgType.PING
        rsv1 = flags & 0xC0 == 0xC0
        size = data[i + 2] * (17 if flags & 2 else 1)
        payload = bytes([0x61 + i % 26]) * size
        ws_session.on_ws_frame(ws, _make_test_ws_frame(opcode, payload, fin, rsv1))  # type: ignore[arg-type]
        # The model.
        if rsv1:
            close = 1002
        elif opcode is WSMsgType.PING:
            assert ws.pongs[-1] == payload
        elif opcode is WSMsgType.CONTINUATION:
            if message is None:
                close = 1002
            else:
                cost += size + 64
                if cost > MAX_MESSAGE:
                    close = 1009
                else:
                    message += payload
                    if fin:
                        expected.append(bytes(message))
                        message = None
        elif message is not None:
            close = 1002
        elif fin:
            expected.append(payload)
        elif size + 64 > MAX_MESSAGE:
            close = 1009
        else:
            message, cost = bytearray(payload), size + 64
        held = ws_session._message
        assert held is None or len(held) <= MAX_MESSAGE
        if close is not None:
            break
    assert ws.closes == ([] if close is None else [close]), (ws.closes, close)
    assert client.frames == expected
    ws_session._end_message()


def target_last_event(data: bytes) -> None:
    text = data.decode("latin-1")
    last_event, _, raw = text.partition("\n")
    try:
        out = _with_last_event(raw.encode("latin-1"), "news", last_event)
    except ValueError:
        return
    assert isinstance(out, bytes)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "head": target_head,
    "port": target_port,
    "close": target_close,
    "frames": target_frames,
    "last_event": target_last_event,
}

# --- the mutation fuzzer -----------------------------------------------------------------

SEEDS: dict[str, list[bytes]] = {
    "head": [
        b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"POST /connection/uni_sse?cf_channel=news&cf_connect=%7B%7D HTTP/1.1\r\n"
        b"Content-Length: 2\r\nOrigin: http://x\r\nHost: x",
        b"GET http://[::1]:80/a?b=c&d HTTP/1.0\r\nLast-Event-ID: 3:abc",
    ],
    "close": [b"\x03\xe8bye", b"\x13\x88", b"\x0f\xa0\xff", b""],
    "frames": [bytes([0, 0, 10, 2, 0, 5, 2, 1, 3]), bytes([1, 1, 255, 3, 0, 1]) * 4],
    "last_event": [b"12:epoch\n{}", b'1:e\n{"subs":{}}', b"x\n[]"],
}
SEEDS["port"] = [s + b"\r\n\r\n" + b"{}" for s in SEEDS["head"]]

_INTERESTING = [
    b"\r\n",
    b"\r\n\r\n",
    b":",
    b" ",
    b"\x00",
    b"\xff",
    "²".encode(),
    "٣".encode(),
    b"9" * 40,
    b"Content-Length: ",
    b"Transfer-Encoding: chunked",
    b"Upgrade: websocket",
    b"Sec-WebSocket-Version: 8",
    b"%",
    b"[",
    b"?",
    b"&",
    b"=",
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(6)
        at = rng.randint(0, len(out))
        if choice == 0 and out:  # flip a byte
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif choice == 1:  # insert random bytes
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif choice == 2:  # insert a token
            out[at:at] = rng.choice(_INTERESTING)
        elif choice == 3 and out:  # delete a run
            del out[at : at + rng.randint(1, 16)]
        elif choice == 4 and out:  # duplicate a run
            start = rng.randrange(len(out))
            out[at:at] = out[start : start + rng.randint(1, 64)]
        else:  # truncate
            del out[rng.randint(0, len(out)) :]
    return bytes(out[:20_000])


def fuzz(name: str, count: int, seed: int = 0) -> int:
    """Run target `name` on `count` inputs; the number run. Raises on the first finding."""
    rng = random.Random(seed)
    target = TARGETS[name]
    corpus = list(SEEDS[name])
    loop = asyncio.new_event_loop()

    async def batch(n: int) -> None:
        for _ in range(n):
            base = rng.choice(corpus)
            data = mutate(base, rng) if rng.random() < 0.9 else rng.randbytes(rng.randint(0, 64))
            try:
                if name == "port":
                    cuts = [rng.randint(0, len(data)) for _ in range(rng.randint(0, 3))]
                    target_port(data, cuts)
                else:
                    target(data)
            except Exception as exc:
                raise AssertionError(f"{name}: {data!r}") from exc
            if len(corpus) < 500 and rng.random() < 0.01:
                corpus.append(data)

    done = 0
    try:
        while done < count:
            step = min(10_000, count - done)
            loop.run_until_complete(batch(step))
            for handle in list(getattr(loop, "_scheduled", [])):
                handle.cancel()  # drop_later timers of the fake sockets
            done += step
    finally:
        loop.close()
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("targets", nargs="*", default=list(TARGETS))
    args = parser.parse_args(argv)
    total = 0
    for name in args.targets:
        started = time.monotonic()
        done = fuzz(name, args.count, args.seed)
        total += done
        elapsed = time.monotonic() - started
        print(f"{name}: {done} inputs in {elapsed:.1f}s, no finding", flush=True)
    print(f"total: {total} inputs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
