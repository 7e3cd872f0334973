"""Frames captured from the Go memberlist peer: we must read them all, and write the
same bytes (given Go's random nonce) from the decoded messages."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from tidings.protocol.memberlist import lzw
from tidings.protocol.memberlist.keyring import Keyring
from tidings.protocol.memberlist.label import split_label
from tidings.protocol.memberlist.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    MessageType,
    Nack,
    Ping,
    PushPull,
    Suspect,
    encode_message,
)
from tidings.protocol.memberlist.packet import (
    decode_packet,
    decompress_message,
    encode_packet,
    split_compound,
)
from tidings.protocol.memberlist.stream import decode_stream, encode_stream

VECTORS = Path(__file__).parent / "vectors"
FRAMES = [json.loads(line) for line in (VECTORS / "frames.jsonl").read_text().splitlines()]
LZW = [json.loads(line) for line in (VECTORS / "lzw.jsonl").read_text().splitlines()]


def _ring(frame: dict[str, Any]) -> Keyring | None:
    return Keyring([frame["key"].encode()]) if frame["key"] else None


def _id(frame: dict[str, Any]) -> str:
    return f"{frame['scenario']}-{frame['kind']}-{frame['hex'][:8]}"


PACKETS = [f for f in FRAMES if f["kind"] == "packet"]
STREAMS = [f for f in FRAMES if f["kind"] == "stream"]


def test_vectors_cover_every_layer() -> None:
    scenarios = {f["scenario"] for f in FRAMES}
    assert scenarios == {
        "plain",
        "compressed",
        "encrypted",
        "encrypted-compressed",
        "labeled",
        "labeled-encrypted",
        "failure",
    }
    kinds = set()
    compounds = compressed = 0
    for frame in PACKETS:
        raw = bytes.fromhex(frame["hex"])
        ring = _ring(frame)
        decoded = decode_packet(raw, keyring=ring, label=frame["label"])
        kinds |= {type(m) for m in decoded.messages}
        compounds += len(decoded.messages) > 1
        body = raw[split_label(raw)[1] :]
        body = ring.decrypt(body, frame["label"].encode()) if ring else body
        body = body[5:] if body[0] == MessageType.HAS_CRC else body
        compressed += body[0] == MessageType.COMPRESS
    assert {Ping, Ack, Alive, Dead, Suspect, IndirectPing, Nack} <= kinds
    assert compounds > 0 and compressed > 0
    first_bytes = {f["hex"][:2] for f in PACKETS}
    assert {"00", "0c", "01", "f4"} <= first_bytes  # plain ping, CRC, encrypted, labelled


@pytest.mark.parametrize("frame", PACKETS, ids=_id)
def test_go_packet_decodes_and_reencodes_byte_exact(frame: dict[str, Any]) -> None:
    raw = bytes.fromhex(frame["hex"])
    ring = _ring(frame)
    decoded = decode_packet(raw, keyring=ring, label=frame["label"])
    assert decoded.problems == ()
    assert decoded.messages

    # Peel the layers by hand to learn which ones Go used, then rebuild.
    _, offset = split_label(raw)
    body = raw[offset:]
    nonce = None
    if ring is not None:
        nonce = body[1:13]
        body = ring.decrypt(body, frame["label"].encode())
    crc = body[0] == MessageType.HAS_CRC
    if crc:
        assert struct.unpack(">I", body[1:5])[0] == zlib.crc32(body[5:])
        body = body[5:]
    compressed = body[0] == MessageType.COMPRESS
    if compressed:
        body = decompress_message(body[1:])
    parts = split_compound(body[1:])[0] if body[0] == MessageType.COMPOUND else [body]

    assert [encode_message(m) for m in decoded.messages] == parts
    rebuilt = encode_packet(
        [encode_message(m) for m in decoded.messages],
        compress="compressed" in frame["scenario"],
        crc=crc,
        keyring=ring,
        label=frame["label"],
        nonce=nonce,
    )
    assert rebuilt == raw


@pytest.mark.parametrize("frame", STREAMS, ids=_id)
def test_go_stream_decodes_and_reencodes_byte_exact(frame: dict[str, Any]) -> None:
    raw = bytes.fromhex(frame["hex"])
    ring = _ring(frame)
    dialer = frame["to"] != "dialer"
    message, used = decode_stream(raw, keyring=ring, label=frame["label"], expect_label=dialer)
    assert used == len(raw)
    nonce = None
    if ring is not None:
        _, offset = split_label(raw) if dialer else ("", 0)
        nonce = raw[offset + 6 : offset + 18]
    rebuilt = encode_stream(
        message,
        compress="compressed" in frame["scenario"],
        keyring=ring,
        label=frame["label"],
        dialer=dialer,
        nonce=nonce,
    )
    assert rebuilt == raw


def test_push_pull_vector_content() -> None:
    frame = next(f for f in STREAMS if f["scenario"] == "plain" and f["hex"].startswith("06"))
    message, _ = decode_stream(bytes.fromhex(frame["hex"]))
    assert isinstance(message, PushPull)
    names = {n.name for n in message.nodes}
    assert names <= {"alpha", "beta"} and names
    assert message.user_state.startswith(b"user-state-of-")
    node = message.nodes[0]
    assert len(node.addr) in (4, 16) and node.port > 0
    assert node.meta.startswith(b"meta-")
    assert node.vsn[:3] == bytes((1, 5, 2))


@pytest.mark.parametrize("vector", LZW, ids=lambda v: v["name"])
def test_lzw_matches_go_both_ways(vector: dict[str, str]) -> None:
    plain = bytes.fromhex(vector["plain"])
    packed = bytes.fromhex(vector["lzw"])
    assert lzw.compress(plain) == packed
    assert lzw.decompress(packed) == plain
