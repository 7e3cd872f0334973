"""Packet and stream layers, LZW, keyring, labels and the Go msgpack layout."""

from __future__ import annotations

import struct
import zlib

import msgpack
import pytest

from tidings.protocol.memberlist import lzw
from tidings.protocol.memberlist.errors import DecodeError, DecryptionError, Incomplete
from tidings.protocol.memberlist.gomsgpack import Kind, pack_struct
from tidings.protocol.memberlist.keyring import Keyring
from tidings.protocol.memberlist.label import label_header, split_label
from tidings.protocol.memberlist.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    MessageType,
    Nack,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    User,
    encode_message,
)
from tidings.protocol.memberlist.packet import (
    compound,
    compress_message,
    decode_message,
    decode_packet,
    encode_packet,
)
from tidings.protocol.memberlist.stream import decode_stream, encode_stream

KEY = b"k" * 16
MESSAGES = [
    Ping(1, "a", b"\x7f\x00\x00\x01", 7946, "b"),
    IndirectPing(2, b"\x0a\x00\x00\x02", 7946, "c", True, b"\x7f\x00\x00\x01", 1, "b"),
    Ack(3, b"payload"),
    Nack(4),
    Suspect(5, "n", "m"),
    Alive(6, "n", b"\x0a\x00\x00\x01", 7946, b"meta", bytes((1, 5, 2, 0, 0, 0))),
    Dead(7, "n", "n"),
    User(b"\x03serf"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_packet_message_round_trips(message: object) -> None:
    raw = encode_message(message)  # type: ignore[arg-type]
    assert decode_message(raw) == message


def test_go_layout_ints_and_raw_strings() -> None:
    out = bytearray()
    pack_struct(out, [(("N", Kind.INT, False), 200), (("U", Kind.UINT, False), 200)])
    # Go writes a signed int over 127 as int16, an unsigned one as uint8; keys are raw.
    assert bytes(out) == b"\x82\xa1N\xd1\x00\xc8\xa1U\xcc\xc8"
    out = bytearray()
    pack_struct(out, [(("S", Kind.STR, False), "x" * 40), (("B", Kind.BYTES, False), b"")])
    assert out[:4] == b"\x82\xa1B\xc0"  # sorted keys; an empty slice is nil
    assert out[4:8] == b"\xa1S\xda\x00" and out[8] == 40  # no str8 in the old spec
    assert msgpack.unpackb(bytes(out), raw=True) == {b"B": None, b"S": b"x" * 40}


def test_omitempty_fields_are_left_out() -> None:
    raw = encode_message(Ping(1, "a"))
    assert raw == b"\x00\x82\xa4Node\xa1a\xa5SeqNo\x01"


def test_decode_ignores_unknown_fields_and_fills_missing_ones() -> None:
    body = msgpack.packb({b"SeqNo": 9, b"Extra": [1, 2]}, use_bin_type=False)
    assert decode_message(b"\x00" + body) == Ping(9, "")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x63",
        b"\x00\x81\xa5SeqNo\xa1x",  # wrong type
        b"\x00\x81\xa5SeqNo\xcf\xff\xff\xff\xff\xff\xff\xff\xff",  # out of uint32 range
        b"\x00\x81\xa5SeqNo",  # truncated
        b"\x00\x93\x01\x02\x03",  # not a map
        b"\x0d\x81\xa5Error\xa1x",  # err only on streams
    ],
)
def test_bad_messages_raise_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_message(raw)


def test_compound_keeps_good_parts_and_reports_bad_ones() -> None:
    good = encode_message(Nack(1))
    packet = compound([good, b"\x63junk", encode_message(Nack(2))])
    decoded = decode_packet(packet)
    assert decoded.messages == (Nack(1), Nack(2))
    assert len(decoded.problems) == 1


def test_truncated_compound_yields_the_complete_parts() -> None:
    packet = compound([encode_message(Nack(1)), encode_message(Nack(2))])[:-1]
    decoded = decode_packet(packet)
    assert decoded.messages == (Nack(1),)
    assert "truncated" in decoded.problems[0]


def test_full_packet_layers_round_trip() -> None:
    parts = [encode_message(m) for m in MESSAGES[:7]]
    ring = Keyring([KEY])
    raw = encode_packet(parts, compress=True, crc=True, keyring=ring, label="blue")
    assert raw.startswith(label_header("blue"))
    assert decode_packet(raw, keyring=ring, label="blue").messages == tuple(MESSAGES[:7])


def test_crc_mismatch_is_refused() -> None:
    raw = bytearray(encode_packet([encode_message(Nack(1))], crc=True))
    raw[-1] ^= 1
    with pytest.raises(DecodeError, match="checksum"):
        decode_packet(bytes(raw))


def test_label_must_match() -> None:
    raw = encode_packet([encode_message(Nack(1))], label="blue")
    with pytest.raises(DecodeError, match="label"):
        decode_packet(raw, label="red")
    with pytest.raises(DecodeError, match="label"):
        decode_packet(raw)
    with pytest.raises(DecodeError):
        split_label(b"\xf4\x00rest")


def test_wrong_key_is_a_decryption_error_and_plain_text_is_refused() -> None:
    raw = encode_packet([encode_message(Nack(1))], keyring=Keyring([KEY]))
    with pytest.raises(DecryptionError):
        decode_packet(raw, keyring=Keyring([b"x" * 32]))
    with pytest.raises(DecryptionError):
        decode_packet(encode_packet([encode_message(Nack(1))]), keyring=Keyring([KEY]))
    # ...unless incoming verification is off (rolling out encryption).
    plain = encode_packet([encode_message(Nack(1))])
    assert decode_packet(plain, keyring=Keyring([KEY]), verify_incoming=False).messages == (
        Nack(1),
    )


def test_keyring_tries_every_key_and_supports_version_zero() -> None:
    old, new = b"o" * 16, b"n" * 24
    sealed = Keyring([old]).encrypt(b"hello", b"ad", version=0)
    assert len(sealed) == 1 + 12 + 16 + 16  # padded to a block
    assert Keyring([new, old]).decrypt(sealed, b"ad") == b"hello"
    with pytest.raises(DecryptionError):
        Keyring([new]).decrypt(sealed, b"ad")
    with pytest.raises(ValueError):
        Keyring([b"short"])
    assert Keyring([old, new], primary=new).primary == new


def test_nested_compression_is_refused() -> None:
    inner = compress_message(encode_message(Nack(1)))
    decoded = decode_packet(compress_message(inner))
    assert decoded.messages == () and decoded.problems


def test_lzw_rejects_streams_without_end_and_bombs() -> None:
    with pytest.raises(DecodeError):
        lzw.decompress(lzw.compress(b"abc")[:-1])
    with pytest.raises(DecodeError):
        lzw.decompress(lzw.compress(b"a" * 10000), limit=1000)
    with pytest.raises(DecodeError):
        lzw.decompress(b"\xff\xff\xff\xff")


@pytest.mark.parametrize("size", [0, 1, 2, 255, 256, 4096, 70000])
def test_lzw_round_trip(size: int) -> None:
    data = bytes((i * 7 + i // 3) % 251 for i in range(size))
    assert lzw.decompress(lzw.compress(data)) == data


PUSH = PushPull(
    True,
    (PushNodeState("a", b"\x7f\x00\x00\x01", 7946, b"m", 3, 0, bytes((1, 5, 2, 0, 0, 0))),),
    b"user",
)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("encrypted", [False, True])
def test_stream_round_trip_and_incomplete_prefixes(compress: bool, encrypted: bool) -> None:
    ring = Keyring([KEY]) if encrypted else None
    raw = encode_stream(PUSH, compress=compress, keyring=ring, label="L")
    assert decode_stream(raw, keyring=ring, label="L") == (PUSH, len(raw))
    for cut in range(len(raw)):
        with pytest.raises(Incomplete):
            decode_stream(raw[:cut], keyring=ring, label="L")


def test_stream_ping_ack_and_user_frames() -> None:
    for message in (Ping(1, "a"), Ack(1), User(b"hi")):
        raw = encode_stream(message)
        assert decode_stream(raw) == (message, len(raw))


def test_stream_refusals() -> None:
    plain = encode_stream(PUSH)
    with pytest.raises(DecodeError, match="not encrypted"):
        decode_stream(plain, keyring=Keyring([KEY]))
    with pytest.raises(DecodeError, match="not configured"):
        decode_stream(encode_stream(PUSH, keyring=Keyring([KEY])))
    with pytest.raises(DecodeError):
        decode_stream(b"\x0a" + struct.pack(">I", 2**31))
    huge = b"\x06\x83\xa4Join\xc2\xa5Nodes\xd2\x7f\xff\xff\xff\xacUserStateLen\x00"
    with pytest.raises(DecodeError, match="nodes"):
        decode_stream(huge)
    with pytest.raises(DecodeError):
        decode_stream(b"\x04\x80")  # alive is not a stream message


def test_crc_is_crc32_ieee_big_endian() -> None:
    body = encode_message(Nack(1))
    raw = encode_packet([body], crc=True)
    assert raw[0] == MessageType.HAS_CRC
    assert raw[1:5] == struct.pack(">I", zlib.crc32(body))
