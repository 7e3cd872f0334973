"""The `tidings lookup` and `tidings queue-admin` command lines."""

from __future__ import annotations

import argparse

import pytest

from tidings.cli import build_parser, main
from tidings.lookup.command import options_from, split_address


def test_addresses() -> None:
    assert split_address("127.0.0.1:4160") == ("127.0.0.1", 4160)
    assert split_address(":4161") == ("0.0.0.0", 4161)
    assert split_address("[::1]:4160") == ("::1", 4160)
    for bad in ("4160", "host:", "host:port"):
        with pytest.raises(argparse.ArgumentTypeError):
            split_address(bad)


def test_lookup_flags_become_options() -> None:
    args = build_parser().parse_args(
        [
            "lookup",
            "--tcp-address=127.0.0.1:1",
            "--http-address=:2",
            "--broadcast-address=me",
            "--inactive-producer-timeout=10",
            "--tombstone-lifetime=3",
        ]
    )
    options = options_from(args)
    assert (options.tcp_address, options.tcp_port) == ("127.0.0.1", 1)
    assert (options.http_address, options.http_port) == ("0.0.0.0", 2)
    assert options.broadcast_address == "me"
    assert options.liveness.inactive_producer_timeout == 10
    assert options.liveness.tombstone_lifetime == 3
    defaults = options_from(build_parser().parse_args(["lookup"]))
    assert (defaults.tcp_port, defaults.http_port) == (4160, 4161)


def test_queue_admin_needs_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["queue-admin"]) == 2
    assert "--lookupd-http-address" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["lookup", "--tcp-address", "nowhere"])
