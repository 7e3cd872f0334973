"""A really full disk: `tidings queue` on an 8 MiB tmpfs, no retention limit set.

PUBs of 16 KiB messages go on until the file system is full: the queue must
answer E_PUB_FAILED (never OK for a message it could not write) and stay up
for consumers. After `kill -9` and a restart on the same full file system,
every answered message is consumed (lost = 0). The tmpfs is mounted by the
fixture (the tests run as root, as in CI) and unmounted afterwards.
"""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.support.queue import QueueProcess, RawClient

pytestmark = [pytest.mark.timeout(120)]

SIZE = 16 * 1024


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    assert os.geteuid() == 0, "mounting a tmpfs needs root (CI runs the tests as root)"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


async def test_full_disk_refuses_pub_and_loses_no_answered_message(
    tmpfs: Path, tmp_path: Path
) -> None:
    queue = QueueProcess(tmpfs / "data", tmp_path / "queue.log", ["--segment-bytes", "1m"])
    queue.start()
    try:
        client = await RawClient.connect(queue.tcp_port)
        answered: list[bytes] = []
        refusal = b""
        for n in range(2000):  # 32 MiB: four times what the file system holds
            message = b"%06d" % n + bytes([n % 251]) * (SIZE - 6)
            client.send(b"PUB full\n" + struct.pack(">i", len(message)) + message)
            answer = await client.response()
            if answer != b"OK":
                refusal = answer
                break
            answered.append(message)
        assert refusal.startswith(b"ERR E_PUB_FAILED"), refusal
        assert 100 < len(answered) < 512  # most of 8 MiB was used, then it stopped
        status, _ = queue.http("POST", "/pub?topic=full", b"m" * SIZE)
        assert status == 503  # HTTP publishes are refused too, not dropped
        assert queue.http("GET", "/ping") == (200, b"OK")

        queue.restart()  # kill -9, then start again on the same full file system
        consumer = await RawClient.connect(queue.tcp_port)
        consumer.send(b"SUB full c\nRDY 100\n")
        assert await consumer.response() == b"OK"
        got: list[bytes] = []
        for _ in answered:
            message = await consumer.message()
            got.append(message.body)
            consumer.send(b"FIN " + message.message_id + b"\n")
        assert got == answered
        consumer.close()
    finally:
        queue.kill()
