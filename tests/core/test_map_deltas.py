"""Per-key deltas of map channels: the values they start from, and each delta computed once."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from tidings.core import map_deltas
from tidings.core.map_deltas import KeyedBases, MapDeltaRun, recovered_for_delta, state_for_delta
from tidings.protocol.centrifuge import fossil
from tidings.protocol.centrifuge.json_codec import JsonCodec
from tidings.protocol.centrifuge.messages import Publication, Push, Reply, raw
from tidings.protocol.centrifuge.protobuf_codec import ProtobufCodec, decode_message, read_uvarint


def doc(key: str, version: int) -> bytes:
    body = {"key": key, "version": version, "text": "the same long text in every version " * 4}
    return msgspec.json.encode(body)


def change(offset: int, key: str, data: bytes = b"", removed: bool = False) -> Publication:
    return Publication(data=raw(data), offset=offset, key=key, removed=removed)


def batch(*pubs: Publication) -> list[tuple[int, Reply]]:
    return [(p.offset, Reply(push=Push(channel="m:x", pub=p))) for p in pubs]


def test_bases_follow_consecutive_offsets_and_forget_at_a_gap() -> None:
    bases = KeyedBases()
    assert bases.advance(change(1, "a", doc("a", 1))) is None
    assert bases.advance(change(2, "b", doc("b", 1))) is None
    assert bases.advance(change(3, "a", doc("a", 2))) == doc("a", 1)
    # Offset 5 after 3: something was missed, no value can be trusted.
    assert bases.advance(change(5, "b", doc("b", 2))) is None
    assert bases.advance(change(6, "a", doc("a", 3))) is None
    assert bases.advance(change(7, "b", doc("b", 3))) == doc("b", 2)
    # A repeat or an older offset (reordered, or a cleared map) forgets too.
    assert bases.advance(change(7, "b", doc("b", 4))) is None
    assert bases.advance(change(1, "b", doc("b", 5))) is None
    assert len(bases) == 1


def test_a_removal_ends_the_keys_chain() -> None:
    bases = KeyedBases()
    bases.advance(change(1, "a", doc("a", 1)))
    assert bases.advance(change(2, "a", removed=True)) is None
    assert bases.advance(change(3, "a", doc("a", 2))) is None
    assert bases.size == len(doc("a", 2))


def test_bases_are_bounded_in_keys_and_bytes() -> None:
    bases = KeyedBases(max_keys=100, max_bytes=1000)
    for n in range(1, 10_001):  # a writer spraying keys
        bases.advance(change(n, f"k{n}", b"x" * 9))
    assert len(bases) == 100 and bases.size == 900
    # The least recently changed went first: an evicted key is simply sent whole.
    assert bases.advance(change(10_001, "k1", b"y")) is None
    assert bases.advance(change(10_002, "k10000", b"z")) == b"x" * 9
    bases.advance(change(10_003, "big", b"b" * 2000))  # larger than the bound: not kept
    assert bases.size <= 1000 and bases.advance(change(10_004, "big", b"c")) is None
    bases.advance(change(10_005, "half", b"h" * 600))
    assert bases.size <= 1000


def _proto_pub(item: bytes) -> Publication:
    _, start = read_uvarint(item, 0, len(item))
    pub = decode_message(item[start:], Reply).push.pub
    assert isinstance(pub, Publication)
    return pub


def _json_pushes(payload: bytes) -> list[dict[str, Any]]:
    return [json.loads(line)["push"]["pub"] for line in payload.splitlines()]


def test_run_sends_known_keys_as_deltas_the_rest_whole_for_json() -> None:
    bases = KeyedBases()
    MapDeltaRun(batch(change(1, "a", doc("a", 1))), [True], bases)
    pubs = (
        change(2, "a", doc("a", 2)),  # known, marked: delta
        change(3, "b", doc("b", 1)),  # new key: whole
        change(4, "a", doc("a", 3)),  # marked no: whole
        change(5, "b", removed=True),
    )
    run = MapDeltaRun(batch(*pubs), [True, True, False, True], bases)
    sent = _json_pushes(run.payload(JsonCodec()))
    assert [p.get("delta", False) for p in sent] == [True, False, False, False]
    assert fossil.apply(doc("a", 1), sent[0]["data"].encode()) == doc("a", 2)
    # Full values are JSON strings for a delta subscriber, as the SDKs expect.
    assert sent[1]["data"] == doc("b", 1).decode() and sent[2]["data"] == doc("a", 3).decode()
    assert sent[3]["removed"] is True and sent[3]["data"] == ""  # as from Centrifugo


def test_run_for_protobuf_carries_the_bytes() -> None:
    bases = KeyedBases()
    run = MapDeltaRun(
        batch(change(1, "a", doc("a", 1)), change(2, "a", doc("a", 2))), [1, 1], bases
    )  # type: ignore[list-item]
    first, second = run.items(ProtobufCodec())
    pub = _proto_pub(second)
    assert pub.delta and fossil.apply(doc("a", 1), bytes(pub.data)) == doc("a", 2)
    assert bytes(_proto_pub(first).data) == doc("a", 1)


def test_each_delta_is_computed_once_whatever_the_subscribers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = fossil.encode

    def counting(source: bytes, target: bytes) -> bytes:
        calls.append(1)
        return real(source, target)

    monkeypatch.setattr(map_deltas.fossil, "encode", counting)
    bases = KeyedBases()
    MapDeltaRun(batch(change(1, "a", doc("a", 1))), [True], bases)
    run = MapDeltaRun(
        batch(change(2, "a", doc("a", 2)), change(3, "a", doc("a", 3))), [1, 1], bases
    )  # type: ignore[list-item]
    json_codec, proto = JsonCodec(), ProtobufCodec()
    payloads = {run.payload(json_codec) for _ in range(50)}
    payloads |= {run.payload(proto) for _ in range(50)}
    assert len(calls) == 2 and len(payloads) == 2


def test_recovered_publications_are_deltas_per_key() -> None:
    pubs = [
        change(1, "a", doc("a", 1)),
        change(2, "b", doc("b", 1)),
        change(3, "a", doc("a", 2)),
        change(4, "b", removed=True),
        change(5, "b", doc("b", 2)),
    ]
    out = recovered_for_delta(pubs, binary=False)
    assert [p.delta for p in out] == [False, False, True, False, False]
    delta = msgspec.json.decode(bytes(out[2].data))
    assert fossil.apply(doc("a", 1), delta.encode()) == doc("a", 2)
    assert msgspec.json.decode(bytes(out[4].data)) == doc("b", 2).decode()
    assert not len(out[3].data)  # an empty removal stays without data in a reply
    binary = recovered_for_delta(pubs, binary=True)
    assert fossil.apply(doc("a", 1), bytes(binary[2].data)) == doc("a", 2)
    assert bytes(binary[0].data) == doc("a", 1)


def test_state_is_text_for_json_delta_subscribers_only() -> None:
    state = [change(1, "a", doc("a", 1))]
    assert msgspec.json.decode(bytes(state_for_delta(state, False)[0].data)) == doc("a", 1).decode()
    assert state_for_delta(state, True) is state


def test_values_read_by_a_subscriber_are_learnt_only_where_they_fit() -> None:
    bases = KeyedBases()
    # Nothing delivered yet: the values as of offset 4 are the start.
    bases.learn({"a": doc("a", 1), "gone": None}, 4)
    assert bases.advance(change(5, "a", doc("a", 2))) == doc("a", 1)
    # Up to exactly the same offset: keys not known are added, known ones stay.
    bases.learn({"a": b"stale", "b": doc("b", 1)}, 5)
    assert bases.advance(change(6, "b", doc("b", 2))) == doc("b", 1)
    assert bases.advance(change(7, "a", doc("a", 3))) == doc("a", 2)
    # Another offset (older or newer than what was delivered): nothing is taken.
    bases.learn({"c": doc("c", 1)}, 6)
    bases.learn({"c": doc("c", 1)}, 9)
    assert bases.advance(change(8, "c", doc("c", 2))) is None
    # A delivery at or below the learnt offset (late, already in the reply): forgotten.
    fresh = KeyedBases()
    fresh.learn({"a": doc("a", 1)}, 10)
    assert fresh.advance(change(10, "a", doc("a", 1))) is None
    assert len(fresh) == 1 and fresh.offset == 10
