"""The client fleet: Python or Go processes, connecting from spread source addresses."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tidings.bench import fleet as fleet_module
from tidings.bench.fleet import Fleet
from tidings.bench.target import Target, start_tidings


def _established_from(source: str, port: int) -> int:
    """Established TCP connections from `source` (dotted IPv4) to 127.0.0.1:`port`."""
    a, b, c, d = (int(x) for x in source.split("."))
    local = f"{d:02X}{c:02X}{b:02X}{a:02X}"
    remote = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].startswith(local + ":") and fields[2] == remote and fields[3] == "01":
            count += 1
    return count


@pytest.fixture
async def server() -> AsyncIterator[Target]:
    target = await start_tidings()
    try:
        yield target
    finally:
        await target.stop()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("client", ["python", "go"])
async def test_large_fleets_spread_source_addresses(
    server: Target, client: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past the threshold every process connects from its own 127.0.x.y, since one
    # source address has only ~28k ephemeral ports towards one server port.
    monkeypatch.setattr(fleet_module, "SOURCE_SPREAD_ABOVE", 0)
    fleet = Fleet(
        server.host,
        server.ws_port,
        6,
        secret=server.secret,
        channels="fan",
        per_worker=3,
        client=client,
    )
    try:
        opened, failed, _wall = await fleet.start(limit_s=40)
        assert (opened, failed) == (6, 0)
        assert _established_from("127.0.1.1", server.ws_port) == 3
        assert _established_from("127.0.1.2", server.ws_port) == 3
        stats = await fleet.stats()
        assert stats.open == 6 and stats.lost == 0
    finally:
        await fleet.stop()


def test_unknown_client() -> None:
    with pytest.raises(ValueError, match="unknown client"):
        Fleet("127.0.0.1", 1, 1, client="rust")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("client", ["python", "go"])
async def test_secret_starting_with_a_dash(client: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # token_urlsafe() secrets start with "-" one time in 64; the client processes must
    # not read such a secret as an option.
    monkeypatch.setattr(secrets, "token_urlsafe", lambda _n: "-dash-first-" + "s" * 32)
    target = await start_tidings()
    fleet = Fleet(target.host, target.ws_port, 2, secret=target.secret, client=client)
    try:
        assert target.secret.startswith("-")
        opened, failed, _wall = await fleet.start(limit_s=40)
        assert (opened, failed) == (2, 0)
    finally:
        await fleet.stop()
        await target.stop()
