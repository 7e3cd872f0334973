"""Property tests: decoders raise nothing but `MemberlistError`, whatever the bytes,
and encoding then decoding any message gives it back. A bounded number of examples
here; `scripts/fuzz-memberlist.py` runs the long campaign."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.protocol.memberlist.fuzzing import CORPUS, LZW_CORPUS, TARGETS, mutate
from tidings.protocol.memberlist import lzw
from tidings.protocol.memberlist.errors import MemberlistError
from tidings.protocol.memberlist.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Nack,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    encode_message,
)
from tidings.protocol.memberlist.packet import decode_message, decode_packet, encode_packet
from tidings.protocol.memberlist.stream import decode_stream, encode_stream


def _survives(target: str, data: bytes) -> None:
    with contextlib.suppress(MemberlistError):
        TARGETS[target](data)


@pytest.mark.parametrize("target", sorted(TARGETS))
@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes(target: str, data: bytes) -> None:
    _survives(target, data)


@pytest.mark.parametrize("target", sorted(TARGETS))
@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), pick=st.integers(0, 10_000))
def test_mutated_go_frames(target: str, seed: int, pick: int) -> None:
    corpus = LZW_CORPUS if target == "lzw" else CORPUS
    _survives(target, mutate(corpus[pick % len(corpus)], random.Random(seed)))


def test_mutation_does_reach_errors() -> None:
    # The fuzz corpus really exercises the error paths (the check above can fail).
    rng = random.Random(0)
    errors = 0
    for i in range(300):
        try:
            TARGETS["packet-encrypted"](mutate(CORPUS[i % len(CORPUS)], rng))
        except MemberlistError:
            errors += 1
    assert errors > 0


u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)
text = st.text(max_size=40)
blob = st.binary(max_size=64)
ip = st.sampled_from([b"", bytes(4), bytes((10, 0, 0, 1)), bytes(16)])
vsn = st.binary(min_size=6, max_size=6)

MESSAGES = st.one_of(
    st.builds(Ping, u32, text, ip, u16, text),
    st.builds(IndirectPing, u32, ip, u16, text, st.booleans(), ip, u16, text),
    st.builds(Ack, u32, blob),
    st.builds(Nack, u32),
    st.builds(Suspect, u32, text, text),
    st.builds(Dead, u32, text, text),
    st.builds(Alive, u32, text, ip, u16, blob, vsn),
)


@settings(max_examples=300, deadline=None)
@given(message=MESSAGES)
def test_messages_round_trip(message: object) -> None:
    assert decode_message(encode_message(message)) == message  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(messages=st.lists(MESSAGES, min_size=1, max_size=20), crc=st.booleans())
def test_packets_round_trip(messages: list[object], crc: bool) -> None:
    raw = encode_packet([encode_message(m) for m in messages], compress=True, crc=crc)  # type: ignore[arg-type]
    assert decode_packet(raw).messages == tuple(messages)


@settings(max_examples=100, deadline=None)
@given(
    nodes=st.lists(
        st.builds(PushNodeState, text, ip, u16, blob, u32, st.integers(0, 3), vsn), max_size=8
    ),
    user=st.binary(max_size=200),
    join=st.booleans(),
    compress=st.booleans(),
)
def test_push_pull_round_trip(
    nodes: list[PushNodeState], user: bytes, join: bool, compress: bool
) -> None:
    frame = PushPull(join, tuple(nodes), user)
    raw = encode_stream(frame, compress=compress)
    assert decode_stream(raw) == (frame, len(raw))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000))
def test_lzw_round_trip_any_bytes(data: bytes) -> None:
    assert lzw.decompress(lzw.compress(data)) == data
