"""`tidings queue-admin`: the queue admin web UI (flags named like nsqadmin's)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from aiohttp import web

from tidings.lookup.admin.app import AdminApp
from tidings.lookup.admin.cluster import QueueCluster
from tidings.lookup.command import split_address


def add_parser(sub: Any) -> None:
    """Register `queue-admin` on the `tidings` subcommand parser."""
    parser = sub.add_parser(
        "queue-admin",
        help="serve the queue admin web UI",
        description=(
            "A web page listing queue nodes, topics and channels (depth, in flight, "
            "deferred, rates, clients) with pause/unpause, empty and delete. It talks to "
            "the nsqd / nsqlookupd HTTP APIs, so it works with tidings and with NSQ."
        ),
    )
    parser.add_argument("--http-address", type=split_address, default="0.0.0.0:4171")
    parser.add_argument(
        "--lookupd-http-address",
        action="append",
        default=[],
        help="lookupd HTTP address host:port (repeatable); nodes are found there",
    )
    parser.add_argument(
        "--nsqd-http-address",
        action="append",
        default=[],
        help="queue node HTTP address host:port (repeatable), for nodes without lookupd",
    )
    parser.add_argument("--log-level", default="info")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.lookupd_http_address and not args.nsqd_http_address:
        print("tidings queue-admin: give --lookupd-http-address or --nsqd-http-address")
        return 2
    for address in [*args.lookupd_http_address, *args.nsqd_http_address]:
        split_address(address)  # refuse a malformed address now, not at the first page load
    host, port = args.http_address
    admin = AdminApp(QueueCluster(args.lookupd_http_address, args.nsqd_http_address))

    def ready(message: str) -> None:  # run_app's start-up notice, once it listens
        print(f"tidings queue-admin ready: http://{host}:{port}/", flush=True)

    try:
        web.run_app(admin.app, host=host, port=port, print=ready, access_log=None)
    except OSError as exc:
        print(f"tidings queue-admin: cannot listen: {exc}", flush=True)
        return 1
    return 0
