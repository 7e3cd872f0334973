"""`GET /dispatch?network=wifi|4g|3g|2g&region=NAME` on the client port.

Answers `{"gateways": [ws URLs...], "ttl": seconds}` from the live cluster view
(`choose_gateways`); without gossip, this node alone (none while it drains).
The client port admits the request like a connection (IP lists, per-IP rate
and socket caps, head size and time), so the route is as public and as
rate limited as connecting. Query values are checked here: a missing network
is `wifi`, an unknown one or an over-long region is a 400 with a JSON reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from tidings.cluster.dispatcher import GatewayList, choose_gateways
from tidings.cluster.metadata import NodeMetadata
from tidings.cluster.settings import MAX_NAME, NETWORKS
from tidings.protocol.memberlist.member import MemberView
from tidings.protocol.memberlist.messages import NodeStateType
from tidings.transport.http import HttpRequest, respond

if TYPE_CHECKING:
    from tidings.cluster.node_gossip import NodeGossip

DISPATCH_PATH = "/dispatch"
DEFAULT_NETWORK = "wifi"
_JSON = "application/json"


class Dispatch:
    """The dispatcher of one node: the gossip view if there is one, else itself."""

    def __init__(self, name: str, client_urls: tuple[str, ...], region: str) -> None:
        self.name = name
        self.client_urls = client_urls
        self.region = region
        self.gossip: NodeGossip | None = None
        self._draining = False
        #: Answers by outcome ("ok", "bad_request"), for `info`.
        self.answers: dict[str, int] = {"ok": 0, "bad_request": 0}

    @property
    def draining(self) -> bool:
        return self.gossip.draining if self.gossip is not None else self._draining

    def drain(self, draining: bool = True) -> None:
        self._draining = draining
        if self.gossip is not None:
            self.gossip.drain(draining)

    def gateways(self, network: str, region: str) -> GatewayList:
        if self.gossip is not None:
            return self.gossip.gateways(network, region)
        meta = NodeMetadata(self.client_urls, region=self.region, draining=self._draining)
        me = MemberView(self.name, ("", 0), meta.to_meta(), 0, NodeStateType.ALIVE, b"")
        return choose_gateways([me], network=network, region=region)

    def handler(self) -> Callable[[HttpRequest, asyncio.Transport], None]:
        def handle(request: HttpRequest, transport: asyncio.Transport) -> None:
            status, body = self.answer(request)
            headers = {"Access-Control-Allow-Origin": "*"}
            if status == 200:
                headers["Cache-Control"] = f"public, max-age={body['ttl']}"
            data = json.dumps(body, separators=(",", ":")).encode()
            respond(transport, status, data, _JSON, headers)

        return handle

    def answer(self, request: HttpRequest) -> tuple[int, dict[str, object]]:
        """(HTTP status, JSON body) for a dispatch request; never raises on input."""
        if request.method not in ("GET", "HEAD"):
            self.answers["bad_request"] += 1
            return 405, {"error": "use GET"}
        network = request.query.get("network", "").strip().lower() or DEFAULT_NETWORK
        region = request.query.get("region", "").strip()
        if network not in NETWORKS:
            self.answers["bad_request"] += 1
            return 400, {"error": f"network must be one of {', '.join(NETWORKS)}"}
        if len(region) > MAX_NAME:
            self.answers["bad_request"] += 1
            return 400, {"error": f"region: at most {MAX_NAME} characters"}
        self.answers["ok"] += 1
        return 200, self.gateways(network, region).as_json()
