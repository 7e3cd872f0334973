"""How publications and client infos are written into Redis and PUB/SUB (JSON).

Every Redis backend encodes and decodes through here, so the stored form
is one. A `Raw` payload that is empty but not the shared `EMPTY` object
would be written as nothing (invalid JSON); these encoders omit it instead.
Decoding raises `CorruptEntry` for bytes that are not what we write.
"""

from __future__ import annotations

import msgspec

from tidings.protocol.centrifuge.messages import EMPTY, ClientInfo, Publication


class CorruptEntry(ValueError):
    """Bytes in Redis that are not an encoded publication or client info."""


_encode = msgspec.json.Encoder().encode
_publication = msgspec.json.Decoder(Publication)
_info = msgspec.json.Decoder(ClientInfo)


def _portable_info(info: ClientInfo) -> ClientInfo:
    if (info.conn_info is EMPTY or info.conn_info) and (info.chan_info is EMPTY or info.chan_info):
        return info
    return msgspec.structs.replace(
        info,
        conn_info=info.conn_info if info.conn_info else EMPTY,
        chan_info=info.chan_info if info.chan_info else EMPTY,
    )


def encode_info(info: ClientInfo) -> bytes:
    return _encode(_portable_info(info))


def encode_publication(pub: Publication) -> bytes:
    """`pub` as stored (its offset, known only to the engine, is not in it)."""
    if pub.data is not EMPTY and not pub.data:
        pub = msgspec.structs.replace(pub, data=EMPTY)
    if pub.info is not None:
        info = _portable_info(pub.info)
        if info is not pub.info:
            pub = msgspec.structs.replace(pub, info=info)
    return _encode(pub)


def decode_publication(data: bytes) -> Publication:
    try:
        return _publication.decode(data)
    except msgspec.DecodeError as exc:
        raise CorruptEntry(f"not a publication: {exc}") from None


def decode_info(data: bytes) -> ClientInfo:
    try:
        return _info.decode(data)
    except msgspec.DecodeError as exc:
        raise CorruptEntry(f"not a client info: {exc}") from None
