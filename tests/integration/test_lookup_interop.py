"""Real nsqd registers with `tidings lookup`; unchanged NSQ clients find it there.

pynsq (Reader through lookupd, Writer), go-nsq and nsqjs each publish to real nsqd
and consume through `tidings lookup`, requeueing some messages once: every message
must be finished, the requeued ones on their second attempt.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.nsq_processes import (
    ROOT,
    NsqProcess,
    gonsq,
    http_call,
    nsqjs,
    run_client,
    start_nsqd,
    start_tidings_lookup,
    wait_for,
)

PYNSQ = ROOT / "tests" / "peers" / "pynsq_client.py"
N = 12
REQ_EVERY = 3  # bodies 0, 3, 6, 9 are requeued once

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
def lookup(tmp_path: Path) -> Iterator[NsqProcess]:
    server = start_tidings_lookup(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def nsqd(tmp_path: Path, lookup: NsqProcess) -> Iterator[NsqProcess]:
    server = start_nsqd(tmp_path, [lookup.tcp_address])
    wait_for(lambda: lookup.get("/nodes")[1]["producers"], what="nsqd to IDENTIFY")
    yield server
    server.stop()


def pynsq(*args: str) -> Any:
    return run_client([sys.executable, str(PYNSQ), *args])


def producer_ports(lookup: NsqProcess, topic: str) -> list[int]:
    status, body = lookup.get(f"/lookup?topic={topic}")
    return sorted(p["tcp_port"] for p in body["producers"]) if status == 200 else []


def test_nsqd_registers_topics_and_channels(lookup: NsqProcess, nsqd: NsqProcess) -> None:
    (node,) = lookup.get("/nodes")[1]["producers"]
    assert (node["tcp_port"], node["http_port"]) == (nsqd.tcp_port, nsqd.http_port)
    assert node["broadcast_address"] == "127.0.0.1"
    assert lookup.get("/lookup?topic=orders") == (404, {"message": "TOPIC_NOT_FOUND"})

    assert http_call(nsqd.http_port, "/topic/create?topic=orders")[0] == 200
    wait_for(lambda: producer_ports(lookup, "orders") == [nsqd.tcp_port], what="topic")
    assert http_call(nsqd.http_port, "/channel/create?topic=orders&channel=billing")[0] == 200
    wait_for(lambda: lookup.get("/channels?topic=orders")[1]["channels"] == ["billing"])
    assert http_call(nsqd.http_port, "/topic/delete?topic=orders")[0] == 200
    wait_for(lambda: producer_ports(lookup, "orders") == [], what="topic unregistered")

    nsqd.stop()
    wait_for(lambda: lookup.get("/nodes")[1]["producers"] == [], what="nsqd gone")


@pytest.mark.parametrize("client", ["pynsq", "gonsq", "nsqjs"])
def test_client_consumes_through_tidings_lookup(
    client: str, lookup: NsqProcess, nsqd: NsqProcess
) -> None:
    topic = f"interop-{client}"
    if client == "pynsq":
        published = pynsq("pub", nsqd.tcp_address, topic, str(N), client)
        result = pynsq("sub", lookup.http_address, topic, "c", str(N), str(REQ_EVERY))
    elif client == "gonsq":
        published = gonsq("pub", "-nsqd", nsqd.tcp_address, "-topic", topic, "-n", str(N))
        result = gonsq(
            "sub",
            *("-lookupd", lookup.http_address, "-topic", topic, "-channel", "c"),
            *("-n", str(N), "-req-every", str(REQ_EVERY)),
        )
    else:
        published = nsqjs("pub", nsqd.tcp_address, topic, str(N), client)
        result = nsqjs("sub", lookup.http_address, topic, "c", str(N), str(REQ_EVERY))
    assert published == {"published": N}
    assert result["finished"] == sorted(f"{client}-{i}" for i in range(N))
    assert result["requeued"] == len(range(0, N, REQ_EVERY))
    assert result["max_attempts_seen"] == 2
    # the consumer's channel was registered by nsqd on SUB
    assert "c" in lookup.get(f"/channels?topic={topic}")[1]["channels"]


def test_consumer_finds_every_nsqd_of_a_topic(tmp_path: Path, lookup: NsqProcess) -> None:
    first = start_nsqd(tmp_path, [lookup.tcp_address])
    second = start_nsqd(tmp_path, [lookup.tcp_address])
    try:
        for index, server in enumerate((first, second)):
            args = ("-nsqd", server.tcp_address, "-topic", "spread", "-n", "5")
            assert gonsq("pub", *args, "-prefix", f"n{index}") == {"published": 5}
        ports = sorted([first.tcp_port, second.tcp_port])
        wait_for(lambda: producer_ports(lookup, "spread") == ports, what="both nsqds")
        args = ("-lookupd", lookup.http_address, "-topic", "spread", "-channel", "c", "-n", "10")
        result = gonsq("sub", *args)
        assert result["finished"] == sorted(f"n{i}-{j}" for i in range(2) for j in range(5))
    finally:
        first.stop()
        second.stop()
