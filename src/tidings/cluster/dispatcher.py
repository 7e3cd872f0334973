"""The dispatcher's choice: which gateways a client should connect to.

Given the live cluster view, a client's region and network type, answer a list
of WebSocket URLs: healthy nodes of the client's region first, least loaded
first, several distinct nodes (each with all its client ports), then nodes of
other regions for retries. Suspect, dead, left and draining nodes never appear.
Clients cache the list for a TTL that depends on their network: a phone on 2G
or 3G pays dearly for every extra round trip, so it keeps the list longer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tidings.cluster.metadata import NodeMetadata
from tidings.protocol.memberlist.member import MemberView
from tidings.protocol.memberlist.messages import NodeStateType

# Seconds a client may cache the answer, per network type.
CACHE_TTL: dict[str, int] = {"wifi": 300, "4g": 600, "3g": 1800, "2g": 3600}
NODES_PER_ANSWER = 3


@dataclass(frozen=True, slots=True)
class GatewayList:
    urls: tuple[str, ...]
    ttl: int
    nodes: tuple[str, ...]  # which members the URLs belong to, in order

    def as_json(self) -> dict[str, object]:
        return {"gateways": list(self.urls), "ttl": self.ttl}


def choose_gateways(
    members: Iterable[MemberView],
    *,
    network: str,
    region: str = "",
    count: int = NODES_PER_ANSWER,
    ttls: dict[str, int] | None = None,
) -> GatewayList:
    """The gateways for a client; `ValueError` for an unknown network type."""
    table = ttls or CACHE_TTL
    if network not in table:
        raise ValueError(f"unknown network {network!r}: one of {', '.join(sorted(table))}")
    usable: list[tuple[MemberView, NodeMetadata]] = []
    for view in members:
        if view.state is not NodeStateType.ALIVE:
            continue
        meta = NodeMetadata.from_meta(view.meta)
        if meta is None or meta.draining or not meta.client_urls:
            continue
        usable.append((view, meta))
    usable.sort(key=lambda vm: (vm[1].connections, vm[0].name))
    local = [vm for vm in usable if region and vm[1].region == region][:count]
    others = [vm for vm in usable if not (region and vm[1].region == region)]
    chosen = local + others[:count]  # other regions last, for retries
    urls = tuple(url for _, meta in chosen for url in meta.client_urls)
    return GatewayList(urls, table[network], tuple(view.name for view, _ in chosen))
