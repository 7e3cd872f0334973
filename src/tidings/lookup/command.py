"""`tidings lookup`: an nsqlookupd-compatible lookup service (flags named like nsqlookupd's)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from tidings.lookup.http import Liveness
from tidings.lookup.server import LookupOptions, LookupServer
from tidings.lookup.tcp import default_hostname


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`, or `:port` for every interface) → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def add_parser(sub: Any) -> None:
    """Register `lookup` on the `tidings` subcommand parser."""
    parser = sub.add_parser(
        "lookup",
        help="run an nsqlookupd-compatible lookup service",
        description=(
            "Queue nodes (tidings queue or nsqd) register their topics and channels over "
            "TCP; consumers find them over HTTP (/lookup?topic=...)."
        ),
    )
    parser.add_argument("--tcp-address", type=split_address, default="0.0.0.0:4160")
    parser.add_argument("--http-address", type=split_address, default="0.0.0.0:4161")
    parser.add_argument(
        "--broadcast-address",
        default=default_hostname(),
        help="address announced to queue nodes (default: this host's name)",
    )
    parser.add_argument(
        "--inactive-producer-timeout",
        type=float,
        default=300.0,
        help="seconds without PING after which a node is no longer listed",
    )
    parser.add_argument(
        "--tombstone-lifetime",
        type=float,
        default=45.0,
        help="seconds a tombstoned node stays hidden from /lookup of that topic",
    )
    parser.add_argument("--log-level", default="info")


def options_from(args: argparse.Namespace) -> LookupOptions:
    # argparse runs `split_address` on the string defaults too.
    tcp: tuple[str, int] = args.tcp_address
    http: tuple[str, int] = args.http_address
    return LookupOptions(
        tcp_address=tcp[0],
        tcp_port=tcp[1],
        http_address=http[0],
        http_port=http[1],
        broadcast_address=args.broadcast_address,
        liveness=Liveness(args.inactive_producer_timeout, args.tombstone_lifetime),
    )


async def serve(server: LookupServer) -> None:
    """Serve until SIGTERM or SIGINT."""
    ports = await server.start()
    print(f"tidings lookup ready: TCP port {ports.tcp}, HTTP port {ports.http}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server = LookupServer(options_from(args))
    try:
        asyncio.run(serve(server))
    except OSError as exc:
        print(f"tidings lookup: cannot listen: {exc}", flush=True)
        return 1
    return 0
