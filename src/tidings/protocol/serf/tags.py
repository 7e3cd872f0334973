"""Serf node tags in memberlist metadata: `0xFF` + a msgpack map of strings, or (Serf
protocol < 3) the bare role string."""

from __future__ import annotations

from tidings.protocol.memberlist.errors import DecodeError
from tidings.protocol.memberlist.gomsgpack import pack_map_header, pack_raw, unpack_one

TAG_MAGIC = 0xFF


def encode_tags(tags: dict[str, str]) -> bytes:
    """Metadata for a Serf cluster (keys sorted, so the bytes are stable)."""
    out = bytearray((TAG_MAGIC,))
    pack_map_header(out, len(tags))
    for key in sorted(tags):
        pack_raw(out, key.encode())
        pack_raw(out, tags[key].encode())
    return bytes(out)


def decode_tags(meta: bytes) -> dict[str, str]:
    """Tags of a Serf member; `DecodeError` if the map is malformed."""
    if not meta or meta[0] != TAG_MAGIC:
        return {"role": meta.decode("utf-8", "replace")}
    value, _ = unpack_one(meta, 1)
    if not isinstance(value, dict):
        raise DecodeError("serf tags are not a map")
    tags: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, bytes) or not isinstance(item, bytes):
            raise DecodeError("serf tags must map strings to strings")
        tags[key.decode("utf-8", "replace")] = item.decode("utf-8", "replace")
    return tags
