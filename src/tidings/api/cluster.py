"""Server API methods of the cluster: `members` (the gossip view from this node) and
`drain` (stop being offered to clients by dispatchers); `info` gains a `gossip` part.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from tidings.api.methods import Result, ServerApi
from tidings.api.requests import InfoRequest
from tidings.cluster.dispatch_route import Dispatch


class MembersRequest(Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class DrainRequest(Struct, forbid_unknown_fields=True, omit_defaults=True):
    #: False ends draining (the node is offered again).
    draining: bool = True


class ClusterMethods:
    def __init__(self, api: ServerApi, dispatch: Dispatch) -> None:
        self.api = api
        self.dispatch = dispatch

    def install(self) -> None:
        self.api.register("members", MembersRequest, self.members)
        self.api.register("drain", DrainRequest, self.drain)
        self.api.register("info", InfoRequest, self.info)

    async def members(self, req: MembersRequest) -> Result:
        gossip = self.dispatch.gossip
        if gossip is None:
            return {"enabled": False, "members": []}
        return {"enabled": True, "members": gossip.members_json()}

    async def drain(self, req: DrainRequest) -> Result:
        self.dispatch.drain(req.draining)
        return {"draining": self.dispatch.draining}

    async def info(self, req: InfoRequest) -> Result:
        result = await self.api.info(req)
        node: dict[str, Any] = result["nodes"][0]
        items: dict[str, float] = node["metrics"]["items"]
        items.update({f"dispatch.{k}": v for k, v in self.dispatch.answers.items()})
        gossip = self.dispatch.gossip
        node["draining"] = self.dispatch.draining
        if gossip is not None:
            items.update(gossip.summary())
            node["gossip"] = {"members": gossip.members_json()}
        return result
