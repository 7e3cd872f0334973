"""`tidings queue` flags."""

from __future__ import annotations

import argparse

import pytest

from tidings.cli import build_parser
from tidings.queue.command import duration, size


def test_sizes_and_durations() -> None:
    assert size("1048576") == 1 << 20
    assert size("64k") == 65536 and size("5MiB") == 5 << 20 and size("1g") == 1 << 30
    assert duration("60s") == 60 and duration("15m") == 900 and duration("250ms") == 0.25
    assert duration("1h") == 3600 and duration("2") == 2
    for bad in ("x", "-1", "5 apples"):
        with pytest.raises(argparse.ArgumentTypeError):
            size(bad)


def test_defaults_are_loopback_and_nsqds() -> None:
    args = build_parser().parse_args(["queue"])
    assert args.tcp_address == "127.0.0.1:4150" and args.http_address == "127.0.0.1:4151"
    assert args.max_msg_size == 1 << 20 and args.max_body_size == 5 << 20
    assert args.msg_timeout == 60 and args.max_rdy_count == 2500 and args.fsync == "batch"


def test_repeatable_lookupd() -> None:
    args = build_parser().parse_args(
        ["queue", "--lookupd-tcp-address", "a:4160", "--lookupd-tcp-address", "b:4160"]
    )
    assert args.lookupd_tcp_addresses == ["a:4160", "b:4160"]
