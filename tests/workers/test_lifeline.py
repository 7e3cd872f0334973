"""The lifeline: children die with their parent (prctl), workers see their stdin close."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tidings.workers.lifeline import watch_parent

#: A parent that starts `sleep` tied to its life, prints its pid, then waits to be killed.
PARENT = """
import signal, subprocess, sys, time
from tidings.workers.lifeline import die_with_parent
child = subprocess.Popen(["sleep", "60"], preexec_fn=die_with_parent(signal.SIGTERM))
print(child.pid, flush=True)
time.sleep(60)
"""


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_child_gets_the_signal_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _running(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _running(child)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


async def test_watch_parent_calls_back_on_end_of_file_only() -> None:
    read_end, write_end = os.pipe()
    gone = asyncio.Event()
    try:
        watch_parent(read_end, gone.set)
        os.write(write_end, b"anything the parent writes is ignored")
        await asyncio.sleep(0.1)
        assert not gone.is_set()
        os.close(write_end)
        await asyncio.wait_for(gone.wait(), 5)
    finally:
        os.close(read_end)
