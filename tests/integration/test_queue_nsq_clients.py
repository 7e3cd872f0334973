"""go-nsq and nsqjs against `tidings queue`: max-in-flight, REQ and FIN, watched from /stats.

Each client consumes from the queue directly, and through `tidings lookup` (the
queue registered with --lookupd-tcp-address); it publishes to the queue
directly. Each consumer is started first with max-in-flight 3; while it
consumes, the queue's `/stats` must show its RDY at 3 and never more than 3
messages in flight to it; every message is
finished, the requeued ones on their second attempt.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.nsq_processes import (
    BIN,
    NSQJS,
    ROOT,
    NsqProcess,
    ensure_built,
    gonsq,
    nsqjs,
    start_tidings_lookup,
    start_tidings_queue,
    wait_for,
)

pytestmark = [pytest.mark.timeout(120)]

N = 30
REQ_EVERY = 5
MAX_IN_FLIGHT = 3
DELAY_MS = 30  # each message takes the consumer this long: its messages wait in flight


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[NsqProcess, NsqProcess]]:
    lookup = start_tidings_lookup(tmp_path)
    queue = start_tidings_queue(tmp_path, [lookup.tcp_address])
    wait_for(lambda: lookup.get("/nodes")[1]["producers"], what="queue registered")
    yield lookup, queue
    queue.stop()
    lookup.stop()


def consumer_stats(queue: NsqProcess, topic: str) -> list[dict[str, Any]]:
    for entry in queue.get("/stats?format=json")[1]["topics"] or []:
        if entry["topic_name"] == topic:
            return [c for channel in entry["channels"] for c in channel["clients"]]
    return []


@pytest.mark.parametrize(
    ("client", "via"),
    [("gonsq", "direct"), ("gonsq", "lookup"), ("nsqjs", "direct"), ("nsqjs", "lookup")],
)
def test_max_in_flight_req_and_fin(
    client: str, via: str, cluster: tuple[NsqProcess, NsqProcess]
) -> None:
    ensure_built()
    lookup, queue = cluster
    topic = f"mif-{client}"
    assert queue.get(f"/topic/create?topic={topic}")[0] == 200
    if client == "gonsq":
        source = (
            ["-nsqd", queue.tcp_address] if via == "direct" else ["-lookupd", lookup.http_address]
        )
        argv = [str(BIN / "gonsq-client"), "sub", *source]
        argv += ["-topic", topic, "-channel", "c", "-n", str(N), "-req-every", str(REQ_EVERY)]
        argv += ["-max-in-flight", str(MAX_IN_FLIGHT), "-handle-delay", f"{DELAY_MS}ms"]
    else:
        source = f"nsqd={queue.tcp_address}" if via == "direct" else lookup.http_address
        argv = ["node", str(NSQJS / "client.js"), "sub", source, topic, "c"]
        argv += [str(N), str(REQ_EVERY), str(MAX_IN_FLIGHT), str(DELAY_MS)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        wait_for(lambda: consumer_stats(queue, topic), what="consumer")
        wait_for(lambda: consumer_stats(queue, topic)[0]["ready_count"] == MAX_IN_FLIGHT)
        publish = gonsq if client == "gonsq" else nsqjs
        if client == "gonsq":
            assert publish("pub", "-nsqd", queue.tcp_address, "-topic", topic, "-n", str(N))
        else:
            assert publish("pub", queue.tcp_address, topic, str(N), client)
        most = 0
        while proc.poll() is None:
            for stats in consumer_stats(queue, topic):
                most = max(most, stats["in_flight_count"])
                assert stats["ready_count"] <= MAX_IN_FLIGHT
            time.sleep(0.01)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert 1 <= most <= MAX_IN_FLIGHT
    assert result["finished"] == sorted(f"{client}-{i}" for i in range(N))
    assert result["requeued"] == len(range(0, N, REQ_EVERY))
    assert result["max_attempts_seen"] == 2
    # the channel ends empty: every message was FIN'd
    wait_for(lambda: not queue.get("/stats?format=json")[1]["topics"][0]["channels"][0]["depth"])
