"""Real nsqd v1.3.0 for the bridge tests (built by scripts/build-nsq-peers.sh)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.nsq_processes import NsqProcess, http_call, start_nsqd


@pytest.fixture
def nsqd(tmp_path: Path) -> Iterator[NsqProcess]:
    server = start_nsqd(tmp_path)
    yield server
    with contextlib.suppress(ProcessLookupError):
        server.proc.send_signal(signal.SIGCONT)  # in case a test stopped it
    server.stop()


def channel_stats(nsqd: NsqProcess, topic: str, channel: str) -> dict[str, Any] | None:
    for entry in nsqd.get("/stats?format=json")[1]["topics"] or []:
        if entry["topic_name"] == topic:
            for stats in entry["channels"]:
                if stats["channel_name"] == channel:
                    return dict(stats)
    return None


def topic_count(nsqd: NsqProcess, topic: str) -> int:
    for entry in nsqd.get("/stats?format=json")[1]["topics"] or []:
        if entry["topic_name"] == topic:
            return int(entry["message_count"])
    return 0


def pub(nsqd: NsqProcess, topic: str, body: bytes) -> None:
    assert http_call(nsqd.http_port, f"/pub?topic={topic}", method="POST", data=body)[0] == 200
