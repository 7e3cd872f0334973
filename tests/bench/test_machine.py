"""CPU lists for pinning, process trees measured as one server, load averages."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import pytest

from tidings.bench.machine import (
    START_AFFINITY,
    command_name,
    kill_leftovers,
    load_summary,
    parse_cpus,
    process_tree,
    sample,
    start_time,
    tree_sample,
)


def test_cpu_lists() -> None:
    first = min(START_AFFINITY)
    assert parse_cpus("") == frozenset()
    assert parse_cpus(str(first)) == {first}
    everything = ",".join(str(c) for c in sorted(START_AFFINITY))
    assert parse_cpus(everything) == START_AFFINITY
    assert parse_cpus(f"{first}-{first}") == {first}


@pytest.mark.parametrize("text", ["x", "1-", "-1", "3-1", "1;2", "0x1"])
def test_malformed_cpu_lists(text: str) -> None:
    with pytest.raises(ValueError, match="bad CPU"):
        parse_cpus(text)


def test_unavailable_cpu() -> None:
    beyond = max(os.cpu_count() or 1, *START_AFFINITY) + 1
    with pytest.raises(ValueError, match="not available"):
        parse_cpus(str(beyond))


def _sleeper_tree() -> subprocess.Popen[bytes]:
    """A shell with a `sleep` child (and `exec`-free so the shell stays its parent)."""
    return subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30; wait"])


def _wait_for_children(pid: int, count: int) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tree = process_tree(pid)
        if len(tree) >= 1 + count:
            return tree
        time.sleep(0.02)
    raise AssertionError(f"no {count} children under {pid}: {process_tree(pid)}")


def test_process_tree_and_its_sum() -> None:
    shell = _sleeper_tree()
    try:
        tree = _wait_for_children(shell.pid, 2)
        assert tree[0] == shell.pid and len(tree) == 3
        assert all(command_name(pid) == "sleep" for pid in tree[1:])
        whole = tree_sample([shell.pid])
        assert whole.processes == 3
        assert whole.rss > sample(shell.pid).rss > 0
        assert whole.redis_rss == 0 and whole.redis_cpu == 0.0
        # a root listed twice (a companion inside the tree) is counted once
        assert tree_sample([shell.pid, tree[1]]).processes == 3
    finally:
        shell.kill()
        shell.wait()


def test_leftovers_are_killed_only_if_still_the_same_process() -> None:
    shell = _sleeper_tree()
    first, second = _wait_for_children(shell.pid, 2)[1:]
    try:
        # a different start time: a reused pid, not ours to kill
        kill_leftovers([(first, start_time(first) + 1), (second, start_time(second))])
        deadline = time.monotonic() + 10
        while second in process_tree(shell.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert second not in process_tree(shell.pid)
        assert first in process_tree(shell.pid)
    finally:
        shell.kill()
        shell.wait()
        with contextlib.suppress(OSError):
            os.kill(first, signal.SIGKILL)


def test_load_summary() -> None:
    assert load_summary([]) == {}
    assert load_summary([2.0, 1.0, 4.0, 3.0]) == {
        "start": 2.0,
        "min": 1.0,
        "mean": 2.5,
        "max": 4.0,
        "end": 3.0,
    }
