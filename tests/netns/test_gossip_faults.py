"""Gossip under real network faults: five tidings members, each in its own network
namespace with its own address, faults injected with nftables.

Needs root (CI runs as root). Go memberlist peers run the same scenarios in
benchmarks/gossip_faults.py, which prints the side-by-side table.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.netns.lab import NetnsLab
from tests.netns.scenarios import kill_one, lossy_period, partition_and_heal, start

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(params=["tidings", "serve"])
def lab(request: pytest.FixtureRequest) -> Iterator[NetnsLab]:
    """Five hosts running the gossip runtime alone, or whole `tidings serve` nodes."""
    assert os.geteuid() == 0, "network namespaces need root (CI runs as root)"
    assert shutil.which("nft"), "scripts/setup-test-deps.sh installs nftables"
    with NetnsLab(5) as lab:
        start(lab, request.param)
        yield lab


def test_kill_one_all_others_mark_it_dead_without_false_positives(lab: NetnsLab) -> None:
    result = kill_one(lab)
    assert len(result.detection) == 4
    assert result.false_positives == 0


def test_ten_percent_loss_declares_no_healthy_member_dead(lab: NetnsLab) -> None:
    assert lossy_period(lab, percent=10, seconds=30) == 0


def test_partition_two_three_then_heal_converges(lab: NetnsLab) -> None:
    assert partition_and_heal(lab, hold=10, limit=90) is not None
