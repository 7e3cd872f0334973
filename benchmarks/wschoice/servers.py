"""Minimal fan-out WebSocket servers used to compare server libraries.

Usage::

    python servers.py {picows|aiohttp|websockets} --port P [options]

Every server runs on uvloop in a single process, accepts WebSocket
connections on ``/`` (permessage-deflate off unless ``--deflate``) and
understands three text commands from any client:

``go N S``
    send N text messages of S bytes to every connected client (the sender
    included).  Messages are sent message-major: message 1 to everybody,
    then message 2, ...  Nothing is awaited between sends.
``rss``
    reply ``rss <bytes>`` (VmRSS of this process).
``cpu``
    reply ``cpu <seconds>`` (``time.process_time()`` of this process).
``times``
    reply ``times <user> <system>`` (``os.times()``), to split the CPU cost
    between the library (user) and the kernel (system).

The process exits by itself after ``--max-seconds`` so it can never be left
running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import sys
import time
from collections.abc import Coroutine
from typing import Any

import uvloop
from aiohttp import WSMsgType as AWSMsgType
from aiohttp import web
from picows import (
    WSFrame,
    WSListener,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)
from picows import WSMsgType as PWSMsgType
from websockets.asyncio.server import ServerConnection, broadcast, serve

HOST = "127.0.0.1"
BACKLOG = 4096

# Filler for the broadcast payloads: JSON-looking text, so that the optional
# compression measurement sees something resembling a real push message.
_FILLER = (
    b'{"channel":"prices:EURUSD","data":{"bid":1.08412,"ask":1.08415,'
    b'"ts":1732250000123,"src":"feed-a","seq":0},"offset":12345,"epoch":"xyz"}'
)


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new value."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def read_rss_bytes() -> int:
    """Resident set size of this process from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return -1


def make_payloads(count: int, size: int) -> list[bytes]:
    """``count`` distinct payloads of exactly ``size`` bytes each."""
    out: list[bytes] = []
    for i in range(count):
        head = b"%08d " % i
        body = (head + _FILLER * (size // len(_FILLER) + 1))[:size]
        out.append(body.ljust(size, b" "))
    return out


def parse_go(text: str) -> tuple[int, int] | None:
    """Parse ``go N S``; return (N, S) or None when malformed/out of range."""
    parts = text.split()
    if len(parts) != 3:
        return None
    try:
        n, s = int(parts[1]), int(parts[2])
    except ValueError:
        return None
    if not (0 < n <= 100_000 and 0 < s <= 1_000_000):
        return None
    return n, s


def control_reply(text: str) -> str | None:
    """Reply for the ``rss``/``cpu``/``times`` commands, None for anything else."""
    if text == "rss":
        return f"rss {read_rss_bytes()}"
    if text == "cpu":
        return f"cpu {time.process_time():.6f}"
    if text == "times":
        t = os.times()
        return f"times {t.user:.3f} {t.system:.3f}"
    return None


# --------------------------------------------------------------------------
# picows
# --------------------------------------------------------------------------


async def run_picows(port: int, use_aiofastnet: bool | None) -> None:
    clients: set[WSTransport] = set()

    def broadcast(payloads: list[bytes]) -> None:
        targets = list(clients)
        text = PWSMsgType.TEXT
        for payload in payloads:
            for transport in targets:
                transport.send(text, payload)

    class Listener(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            clients.add(transport)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            clients.discard(transport)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == PWSMsgType.TEXT:
                text = frame.get_payload_as_ascii_text()
                reply = control_reply(text)
                if reply is not None:
                    transport.send(PWSMsgType.TEXT, reply.encode())
                    return
                go = parse_go(text)
                if go is not None:
                    broadcast(make_payloads(*go))
            elif frame.msg_type == PWSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    def factory(request: WSUpgradeRequest) -> WSListener | None:
        return Listener() if request.path == b"/" else None

    server = await ws_create_server(
        factory,
        HOST,
        port,
        read_buffer_init_size=1024,
        backlog=BACKLOG,
        use_aiofastnet=use_aiofastnet,
    )
    async with server:
        await server.serve_forever()


# --------------------------------------------------------------------------
# aiohttp
# --------------------------------------------------------------------------


async def run_aiohttp(port: int, send_mode: str, deflate: bool) -> None:
    clients: set[web.WebSocketResponse] = set()

    async def broadcast_await(payloads: list[bytes]) -> None:
        # The documented way: one awaited send per connection.  send_frame()
        # does not yield for uncompressed frames unless the transport is
        # paused, so this is cheap but still costs a coroutine per send.
        targets = list(clients)
        text = AWSMsgType.TEXT
        for payload in payloads:
            for ws in targets:
                try:
                    await ws.send_frame(payload, text)
                except ConnectionError:
                    clients.discard(ws)

    def broadcast_writer(payloads: list[bytes]) -> None:
        # Private API: write the frame synchronously through the connection's
        # WebSocketWriter, no coroutine per send (uncompressed only).
        writers = [ws._writer for ws in clients if ws._writer is not None]
        text = int(AWSMsgType.TEXT)
        for payload in payloads:
            for writer in writers:
                if not writer.transport.is_closing():
                    writer._write_websocket_frame(payload, text, 0)

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=deflate, heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        clients.add(ws)
        try:
            async for msg in ws:
                if msg.type != AWSMsgType.TEXT:
                    continue
                reply = control_reply(msg.data)
                if reply is not None:
                    await ws.send_str(reply)
                    continue
                go = parse_go(msg.data)
                if go is None:
                    continue
                payloads = make_payloads(*go)
                if send_mode == "writer" and not deflate:
                    broadcast_writer(payloads)
                else:
                    await broadcast_await(payloads)
        finally:
            clients.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, port, backlog=BACKLOG)
    await site.start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------
# websockets
# --------------------------------------------------------------------------


async def run_websockets(port: int, deflate: bool) -> None:
    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        try:
            async for message in ws:
                if not isinstance(message, str):
                    continue
                reply = control_reply(message)
                if reply is not None:
                    await ws.send(reply)
                    continue
                go = parse_go(message)
                if go is None:
                    continue
                for payload in make_payloads(*go):
                    broadcast(clients, payload, text=True)
        finally:
            clients.discard(ws)

    async with serve(
        handler,
        HOST,
        port,
        compression="deflate" if deflate else None,
        ping_interval=None,
        max_size=1 << 20,
        backlog=BACKLOG,
    ) as server:
        await server.serve_forever()


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lib", choices=["picows", "aiohttp", "websockets"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="enable permessage-deflate (websockets, aiohttp; not picows)",
    )
    parser.add_argument(
        "--aiohttp-send",
        choices=["await", "writer"],
        default="await",
        help="aiohttp fan-out: awaited send_frame() (public API) or the "
        "connection's private WebSocketWriter (synchronous)",
    )
    parser.add_argument(
        "--picows-aiofastnet",
        choices=["auto", "on", "off"],
        default="auto",
        help="picows transport: aiofastnet if installed (auto) or forced",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=900.0,
        help="exit by itself after this many seconds",
    )
    args = parser.parse_args(argv)
    raise_nofile_limit()

    if args.lib == "picows" and args.deflate:
        parser.error("picows does not implement permessage-deflate")
    afn = {"auto": None, "on": True, "off": False}[args.picows_aiofastnet]

    def make_coro() -> Coroutine[Any, Any, None]:
        if args.lib == "picows":
            return run_picows(args.port, afn)
        if args.lib == "aiohttp":
            return run_aiohttp(args.port, args.aiohttp_send, args.deflate)
        return run_websockets(args.port, args.deflate)

    async def bounded() -> None:
        try:
            await asyncio.wait_for(make_coro(), args.max_seconds)
        except TimeoutError:
            print(f"servers.py: exiting after {args.max_seconds}s", file=sys.stderr)

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(bounded())
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
