"""What a tidings node tells the cluster about itself, in memberlist's `Meta`.

Encoded as Serf tags (`0xFF` + a msgpack map of strings), so `serf members` shows
them and Serf agents accept the member: `ws` (client WebSocket URLs, comma
separated: several ports), `api` (server API URL), `region`, `network`, `conns`
(current client connections), `draining` ("1" while the node sheds clients), and
`role` = "tidings", which is how other tidings nodes recognise each other.
Memberlist caps metadata at 512 bytes; `to_meta` refuses more.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.protocol.memberlist.errors import DecodeError
from tidings.protocol.memberlist.messages import META_MAX_SIZE
from tidings.protocol.serf.tags import decode_tags, encode_tags

ROLE = "tidings"


@dataclass(frozen=True, slots=True)
class NodeMetadata:
    client_urls: tuple[str, ...]
    api_url: str = ""
    region: str = ""
    network: str = ""
    connections: int = 0
    draining: bool = False

    def to_meta(self) -> bytes:
        tags = {
            "role": ROLE,
            "ws": ",".join(self.client_urls),
            "api": self.api_url,
            "region": self.region,
            "network": self.network,
            "conns": str(self.connections),
            "draining": "1" if self.draining else "0",
        }
        meta = encode_tags({k: v for k, v in tags.items() if v})
        if len(meta) > META_MAX_SIZE:
            raise ValueError(f"node metadata is {len(meta)} bytes, memberlist allows 512")
        return meta

    @classmethod
    def from_meta(cls, meta: bytes) -> NodeMetadata | None:
        """The metadata of a tidings node, or None for anything else (Go peers, Serf)."""
        try:
            tags = decode_tags(meta)
        except DecodeError:
            return None
        if tags.get("role") != ROLE:
            return None
        try:
            connections = int(tags.get("conns", "0"))
        except ValueError:
            connections = 0
        return cls(
            client_urls=tuple(u for u in tags.get("ws", "").split(",") if u),
            api_url=tags.get("api", ""),
            region=tags.get("region", ""),
            network=tags.get("network", ""),
            connections=max(connections, 0),
            draining=tags.get("draining") == "1",
        )
