"""Decoder fuzzing shared by the hypothesis tests and `scripts/fuzz-memberlist.py`:
a corpus of real Go frames, mutators, and the targets that must raise nothing but
`MemberlistError`."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from tidings.protocol.memberlist import lzw
from tidings.protocol.memberlist.keyring import Keyring
from tidings.protocol.memberlist.packet import decode_message, decode_packet
from tidings.protocol.memberlist.stream import decode_stream

VECTORS = Path(__file__).parent / "vectors"
FRAMES = [json.loads(line) for line in (VECTORS / "frames.jsonl").read_text().splitlines()]
CORPUS = [bytes.fromhex(f["hex"]) for f in FRAMES]
LZW_CORPUS = [
    bytes.fromhex(json.loads(line)["lzw"])
    for line in (VECTORS / "lzw.jsonl").read_text().splitlines()
    if len(line) < 20000
]
RING = Keyring([b"0123456789abcdef", b"0123456789abcdef0123456789abcdef"])


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A few random edits: flips, truncation, insertion, duplication, big length fields."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(6)
        if choice == 0 and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif choice == 1 and buf:
            del buf[rng.randrange(len(buf)) :]
        elif choice == 2:
            at = rng.randrange(len(buf) + 1)
            buf[at:at] = rng.randbytes(rng.randint(1, 8))
        elif choice == 3 and buf:
            buf[rng.randrange(len(buf))] = rng.choice((0x00, 0x7F, 0xC0, 0xDB, 0xDF, 0xFF))
        elif choice == 4 and len(buf) > 4:
            at = rng.randrange(len(buf) - 4)
            buf[at : at + 4] = b"\xff\xff\xff\x7f"
        else:
            at = rng.randrange(len(buf) + 1)
            buf[at:at] = buf[: rng.randint(0, 32)]
    return bytes(buf)


def _packet_plain(data: bytes) -> object:
    return decode_packet(data)


def _packet_encrypted(data: bytes) -> object:
    return decode_packet(data, keyring=RING, label="tidings")


def _packet_labelled(data: bytes) -> object:
    return decode_packet(data, label="tidings")


def _stream(data: bytes) -> object:
    return decode_stream(data)


def _stream_encrypted(data: bytes) -> object:
    return decode_stream(data, keyring=RING, label="tidings")


def _lzw(data: bytes) -> object:
    return lzw.decompress(data, limit=1 << 20)


TARGETS: dict[str, Callable[[bytes], object]] = {
    "packet": _packet_plain,
    "packet-encrypted": _packet_encrypted,
    "packet-labelled": _packet_labelled,
    "message": decode_message,
    "stream": _stream,
    "stream-encrypted": _stream_encrypted,
    "lzw": _lzw,
}
