"""UDP packets: the layers around messages, peeled on the way in, added on the way out.

Outermost first: label header, encryption, CRC (`[12][crc32 BE]`, sent to peers
speaking protocol 5), compression (`[9]{Algo, Buf}`), compound
(`[7][count][count * u16 BE length][parts]`), and finally the messages.
Memberlist handles every part of a compound on its own, so one bad part does
not cost the others: `decode_packet` returns the good messages and the
problems it met.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from tidings.protocol.memberlist import lzw
from tidings.protocol.memberlist.errors import DecodeError
from tidings.protocol.memberlist.gomsgpack import unpack_one
from tidings.protocol.memberlist.keyring import Keyring
from tidings.protocol.memberlist.label import label_header, split_label
from tidings.protocol.memberlist.messages import (
    STRUCT_TYPES,
    Compress,
    MessageType,
    PacketMessage,
    User,
    decode_struct,
    encode_struct,
)

# A UDP payload expands at most this much when decompressed (push-pull, over TCP,
# has its own larger limit). Compression inside compression is refused past one level.
MAX_PACKET_DECOMPRESSED = 1024 * 1024
MAX_COMPRESS_DEPTH = 1
MAX_COMPOUND_PARTS = 255
# Bytes a compound adds: its header, and each part's length (memberlist's overheads).
COMPOUND_HEADER_OVERHEAD = 2
COMPOUND_OVERHEAD = 2
LZW_ALGO = 0


@dataclass(frozen=True, slots=True)
class DecodedPacket:
    messages: tuple[PacketMessage, ...]
    problems: tuple[str, ...] = ()


def decode_packet(
    buf: bytes,
    *,
    keyring: Keyring | None = None,
    label: str = "",
    verify_incoming: bool = True,
) -> DecodedPacket:
    """Peel a UDP packet. Raises `DecodeError` when the packet as a whole is refused
    (wrong label, undecryptable, bad CRC); problems inside a compound are reported."""
    packet_label, offset = split_label(buf)
    if packet_label != label:
        raise DecodeError(f"packet with unacceptable label {packet_label!r}")
    body = bytes(buf[offset:])
    if keyring is not None:
        try:
            body = keyring.decrypt(body, packet_label.encode("utf-8", "surrogateescape"))
        except DecodeError:
            if verify_incoming:
                raise
    if len(body) >= 5 and body[0] == MessageType.HAS_CRC:
        (expected,) = struct.unpack_from(">I", body, 1)
        body = body[5:]
        if zlib.crc32(body) != expected:
            raise DecodeError("packet checksum mismatch")
    messages: list[PacketMessage] = []
    problems: list[str] = []
    _decode_into(body, messages, problems, depth=0)
    return DecodedPacket(tuple(messages), tuple(problems))


def decode_message(buf: bytes) -> PacketMessage:
    """One message with its type byte (no compound, no compression)."""
    if not buf:
        raise DecodeError("missing message type byte")
    kind = buf[0]
    if kind == MessageType.USER:
        return User(bytes(buf[1:]))
    try:
        mtype = MessageType(kind)
        cls = STRUCT_TYPES[mtype]
    except (ValueError, KeyError):
        raise DecodeError(f"message type {kind} not supported in a packet") from None
    if mtype == MessageType.ERR:
        raise DecodeError("an err message is only valid on a stream")
    value, _ = unpack_one(buf, 1)
    message: PacketMessage = decode_struct(cls, value)
    return message


def _decode_into(
    buf: bytes, messages: list[PacketMessage], problems: list[str], depth: int
) -> None:
    if not buf:
        problems.append("missing message type byte")
        return
    kind = buf[0]
    try:
        if kind == MessageType.COMPOUND:
            parts, truncated = split_compound(buf[1:])
            if truncated:
                problems.append(f"compound had {truncated} truncated messages")
            for part in parts:
                _decode_into(part, messages, problems, depth)
        elif kind == MessageType.COMPRESS:
            if depth >= MAX_COMPRESS_DEPTH:
                raise DecodeError("compressed message inside a compressed message")
            _decode_into(decompress_message(buf[1:]), messages, problems, depth + 1)
        else:
            messages.append(decode_message(buf))
    except DecodeError as exc:
        problems.append(str(exc))


def split_compound(buf: bytes) -> tuple[list[bytes], int]:
    """Parts of a compound body (after the type byte) and how many were truncated."""
    if len(buf) < 1:
        raise DecodeError("missing compound length byte")
    count = buf[0]
    if len(buf) < 1 + 2 * count:
        raise DecodeError("truncated compound length slice")
    lengths = struct.unpack_from(f">{count}H", buf, 1)
    offset = 1 + 2 * count
    parts: list[bytes] = []
    for index, size in enumerate(lengths):
        if len(buf) - offset < size:
            return parts, count - index
        parts.append(bytes(buf[offset : offset + size]))
        offset += size
    return parts, 0


def decompress_message(body: bytes, limit: int = MAX_PACKET_DECOMPRESSED) -> bytes:
    """The payload of a compress message body (after the type byte)."""
    value, _ = unpack_one(body)
    compressed = decode_struct(Compress, value)
    if compressed.algo != LZW_ALGO:
        raise DecodeError(f"cannot decompress unknown algorithm {compressed.algo}")
    return lzw.decompress(compressed.buf, limit)


def compress_message(payload: bytes) -> bytes:
    """`[9]{Algo: 0, Buf: lzw(payload)}` as memberlist's `compressPayload` writes it."""
    return bytes((MessageType.COMPRESS,)) + encode_struct(Compress(LZW_ALGO, lzw.compress(payload)))


def compound(parts: Sequence[bytes]) -> bytes:
    """One compound message of at most 255 encoded messages."""
    if len(parts) > MAX_COMPOUND_PARTS:
        raise ValueError("a compound message holds at most 255 parts")
    header = bytes((MessageType.COMPOUND, len(parts))) + b"".join(
        struct.pack(">H", len(p)) for p in parts
    )
    return header + b"".join(parts)


def encode_packet(
    parts: Sequence[bytes],
    *,
    compress: bool = False,
    crc: bool = False,
    keyring: Keyring | None = None,
    label: str = "",
    nonce: bytes | None = None,
) -> bytes:
    """Wrap encoded messages into one UDP payload, as `rawSendMsgPacket` does.

    Compression is kept only when it makes the packet smaller (memberlist's rule).
    """
    if not parts:
        raise ValueError("a packet carries at least one message")
    body = parts[0] if len(parts) == 1 else compound(parts)
    if compress:
        squeezed = compress_message(body)
        if len(squeezed) < len(body):
            body = squeezed
    if crc:
        body = bytes((MessageType.HAS_CRC,)) + struct.pack(">I", zlib.crc32(body)) + body
    if keyring is not None:
        body = keyring.encrypt(body, label.encode(), nonce=nonce)
    return label_header(label) + body
