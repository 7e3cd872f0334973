"""NSQ's own programs relying on `tidings lookup`: nsqadmin, and nsqd's channel discovery.

nsqadmin (real, v1.3.0) reads nodes and topics from the lookup service and sends it
create, delete and tombstone calls; nsqd asks it for a topic's channels when it
creates that topic. Both must work unchanged against `tidings lookup`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.nsq_processes import (
    NsqProcess,
    http_call,
    start_nsqadmin,
    start_nsqd,
    start_tidings_lookup,
    wait_for,
)

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[NsqProcess, NsqProcess, NsqProcess]]:
    lookup = start_tidings_lookup(tmp_path)
    nsqd = start_nsqd(tmp_path, [lookup.tcp_address])
    admin = start_nsqadmin(tmp_path, lookup.http_address)
    wait_for(lambda: lookup.get("/nodes")[1]["producers"], what="nsqd registered")
    yield lookup, nsqd, admin
    for process in (admin, nsqd, lookup):
        process.stop()


def admin_call(admin: NsqProcess, method: str, path: str, body: dict[str, Any]) -> Any:
    status, answer = http_call(admin.http_port, path, method=method, data=json.dumps(body).encode())
    assert status == 200, answer
    return answer


def seed(nsqd: NsqProcess) -> None:
    assert http_call(nsqd.http_port, "/topic/create?topic=t")[0] == 200
    assert http_call(nsqd.http_port, "/channel/create?topic=t&channel=c")[0] == 200
    for i in range(3):
        http_call(nsqd.http_port, "/pub?topic=t", method="POST", data=f"m{i}".encode())


def test_nsqadmin_lists_what_tidings_lookup_knows(
    cluster: tuple[NsqProcess, NsqProcess, NsqProcess],
) -> None:
    lookup, nsqd, admin = cluster
    seed(nsqd)
    wait_for(lambda: lookup.get("/channels?topic=t")[1]["channels"] == ["c"], what="channel")

    (node,) = admin.get("/api/nodes")[1]["nodes"]
    assert (node["tcp_port"], node["http_port"]) == (nsqd.tcp_port, nsqd.http_port)
    assert node["topics"] == [{"topic": "t", "tombstoned": False}]
    assert node["out_of_date"] is False
    assert admin.get("/api/topics")[1]["topics"] == ["t"]
    topic = admin.get("/api/topics/t")[1]
    assert topic["message_count"] == 3
    assert [n["node"] for n in topic["nodes"]] == [nsqd.http_address]
    channel = admin.get("/api/topics/t/c")[1]
    assert channel["depth"] == 3


def test_nsqadmin_actions_reach_tidings_lookup(
    cluster: tuple[NsqProcess, NsqProcess, NsqProcess],
) -> None:
    lookup, nsqd, admin = cluster
    seed(nsqd)
    wait_for(lambda: lookup.get("/lookup?topic=t")[0] == 200, what="topic registered")

    admin_call(admin, "POST", "/api/topics", {"topic": "made", "channel": "mc"})
    assert lookup.get("/channels?topic=made") == (200, {"channels": ["mc"]})
    admin_call(admin, "DELETE", "/api/topics/made", {})
    assert "made" not in lookup.get("/topics")[1]["topics"]

    # Tombstone the node for topic t: lookup hides it at once, nsqadmin then deletes
    # the topic on the node, which unregisters it.
    admin_call(admin, "DELETE", f"/api/nodes/{nsqd.http_address}", {"topic": "t"})
    assert lookup.get("/lookup?topic=t")[1]["producers"] == []
    wait_for(lambda: lookup.get("/nodes")[1]["producers"][0]["topics"] == [], what="unregister")


def test_nsqd_takes_a_topics_channels_from_tidings_lookup(
    tmp_path: Path, cluster: tuple[NsqProcess, NsqProcess, NsqProcess]
) -> None:
    lookup, nsqd, _ = cluster
    seed(nsqd)
    wait_for(lambda: lookup.get("/channels?topic=t")[1]["channels"] == ["c"], what="channel")
    second = start_nsqd(tmp_path, [lookup.tcp_address])
    try:
        wait_for(lambda: len(lookup.get("/nodes")[1]["producers"]) == 2, what="second nsqd")
        http_call(second.http_port, "/pub?topic=t", method="POST", data=b"hello")

        def channels_on_second() -> list[str]:
            stats = second.get("/stats?format=json")[1]
            return [c["channel_name"] for t in stats["topics"] for c in t["channels"]]

        # nsqd asked tidings lookup for t's channels and created c before storing the message
        wait_for(lambda: channels_on_second() == ["c"], what="channel from lookup")
    finally:
        second.stop()
