"""Timings and limits of a member, with memberlist's LAN defaults, and the
formulas memberlist derives from them (all in seconds)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tidings.protocol.memberlist.messages import DEFAULT_VSN

PUSH_PULL_SCALE_THRESHOLD = 32


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """What `memberlist.DefaultLANConfig()` sets, by the same names."""

    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    indirect_checks: int = 3
    retransmit_mult: int = 4
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    push_pull_interval: float = 30.0
    gossip_interval: float = 0.2
    gossip_nodes: int = 3
    gossip_to_the_dead_time: float = 30.0
    awareness_max_multiplier: int = 8
    tcp_pings: bool = True
    udp_buffer_size: int = 1400
    # Bytes each packet loses to layers added after the state machine (label, encryption).
    packet_overhead: int = 0
    vsn: bytes = DEFAULT_VSN
    # Not memberlist but Serf's healing: every `reconnect_interval` try to push-pull
    # (join) with a random member we believe failed, for up to `reconnect_timeout`.
    # Without it two sides of a healed partition keep each other dead for ever.
    reconnect_interval: float = 30.0
    reconnect_timeout: float = 24 * 3600.0

    def suspicion_timeout(self, nodes: int) -> float:
        """Minimum suspicion time: mult * max(1, log10 n) * probe interval (ms-rounded)."""
        scale = max(1.0, math.log10(max(1.0, float(nodes))))
        return self.suspicion_mult * math.floor(scale * 1000) * self.probe_interval / 1000

    def retransmit_limit(self, nodes: int) -> int:
        """How many times a broadcast is sent: mult * ceil(log10(n + 1))."""
        return self.retransmit_mult * math.ceil(math.log10(nodes + 1))

    def push_pull_period(self, nodes: int) -> float:
        """Push-pull interval, stretched logarithmically above 32 members."""
        if nodes <= PUSH_PULL_SCALE_THRESHOLD:
            return self.push_pull_interval
        factor = math.ceil(math.log2(nodes) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1.0
        return factor * self.push_pull_interval
