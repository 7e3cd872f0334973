"""`tidings queue`: argv -> QueueSettings -> server (nsqd's flag names)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from pathlib import Path
from typing import Any

from tidings.fsync import FSYNC_POLICIES
from tidings.queue.settings import QueueSettings

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_TIME_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "": 1}


def size(text: str) -> int:
    """'1048576', '64k', '5MiB', '1g' -> bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(i?b)?\s*", text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def duration(text: str) -> float:
    """'60s', '15m', '1h', '250ms', '30' (seconds) -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|)\s*", text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r}")
    return float(match.group(1)) * _TIME_UNITS[match.group(2)]


def add_parser(sub: Any) -> None:
    defaults = QueueSettings()
    parser = sub.add_parser(
        "queue",
        help="run an NSQ-compatible queue node (nsqd protocol, durable log)",
        description=(
            "Run a queue node speaking nsqd's TCP protocol V2 and HTTP API. Every message "
            "is written to a log on disk before PUB is answered."
        ),
    )
    add = parser.add_argument
    add("--tcp-address", default=defaults.tcp_address, help="TCP listen host:port")
    add("--http-address", default=defaults.http_address, help="HTTP listen host:port")
    add("--broadcast-address", default="", help="address announced to lookupd (default hostname)")
    add("--data-path", type=Path, default=defaults.data_path, help="directory of logs and state")
    add("--fsync", choices=FSYNC_POLICIES, default=defaults.fsync, help="log fsync policy")
    add("--max-msg-size", type=size, default=defaults.max_msg_size, help="largest message")
    add("--max-body-size", type=size, default=defaults.max_body_size, help="largest MPUB body")
    add("--msg-timeout", type=duration, default=defaults.msg_timeout, help="in-flight timeout")
    add("--max-msg-timeout", type=duration, default=defaults.max_msg_timeout)
    add("--max-req-timeout", type=duration, default=defaults.max_req_timeout)
    add("--max-heartbeat-interval", type=duration, default=defaults.max_heartbeat_interval)
    add("--max-rdy-count", type=int, default=defaults.max_rdy_count)
    add(
        "--max-attempts",
        type=int,
        default=0,
        help="deliveries before a message goes to <topic>.dead (0: unlimited; per channel "
        "with /channel/create?max_attempts=)",
    )
    add("--retention-bytes", type=size, default=0, help="disk budget of all logs (0: no limit)")
    add("--segment-bytes", type=size, default=defaults.segment_bytes, help="log segment size")
    add("--mem-queue-size", type=int, default=defaults.mem_queue_size)
    add(
        "--max-buffered-bytes",
        type=size,
        default=defaults.max_buffered_bytes,
        help="unparsed input all connections may hold; past it, big senders wait",
    )
    add("--checkpoint-interval", type=duration, default=defaults.checkpoint_interval)
    add(
        "--lookupd-tcp-address",
        action="append",
        default=[],
        dest="lookupd_tcp_addresses",
        help="lookupd to register with (repeatable)",
    )
    add("--replica", default="", help="host:port of a replica's replication listener")
    add("--replica-timeout", type=duration, default=defaults.replica_timeout)
    add("--replication-address", default="", help="accept a primary's log on host:port")
    add("--log-level", default="info")


def run(args: argparse.Namespace) -> int:
    settings = QueueSettings(
        tcp_address=args.tcp_address,
        http_address=args.http_address,
        broadcast_address=args.broadcast_address,
        data_path=args.data_path,
        fsync=args.fsync,
        max_msg_size=args.max_msg_size,
        max_body_size=args.max_body_size,
        msg_timeout=args.msg_timeout,
        max_msg_timeout=args.max_msg_timeout,
        max_req_timeout=args.max_req_timeout,
        max_heartbeat_interval=args.max_heartbeat_interval,
        max_rdy_count=args.max_rdy_count,
        max_attempts=args.max_attempts,
        retention_bytes=args.retention_bytes,
        segment_bytes=args.segment_bytes,
        mem_queue_size=args.mem_queue_size,
        max_buffered_bytes=args.max_buffered_bytes,
        checkpoint_interval=args.checkpoint_interval,
        lookupd_tcp_addresses=args.lookupd_tcp_addresses,
        replica=args.replica,
        replica_timeout=args.replica_timeout,
        replication_address=args.replication_address,
    )
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from tidings.queue.server import run as serve

    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    try:
        runner(serve(settings))
    except OSError as exc:
        print(f"tidings queue: {exc}", file=sys.stderr)
        return 1
    return 0
