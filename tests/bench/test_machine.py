"""CPU lists for pinning (`--server-cpus`, `--client-cpus`)."""

from __future__ import annotations

import os

import pytest

from tidings.bench.machine import START_AFFINITY, parse_cpus


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
