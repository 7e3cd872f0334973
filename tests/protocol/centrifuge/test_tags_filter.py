"""Publication tags filters: decoding (JSON and protobuf), validation, bounds and matching."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tidings.protocol.centrifuge.messages import FilterNode
from tidings.protocol.centrifuge.protobuf_codec import encode_message
from tidings.protocol.centrifuge.tags_filter import (
    MAX_DEPTH,
    MAX_NODES,
    MAX_VALS,
    FilterError,
    Matcher,
    compile_filter,
    decode_filter,
)


def compiled(tree: dict[str, Any]) -> Matcher:
    node = decode_filter(msgspec.json.encode(tree), binary=False)
    assert node is not None
    return compile_filter(node)


def leaf(key: str, cmp: str, val: str = "", vals: list[str] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"key": key, "cmp": cmp}
    if val:
        node["val"] = val
    if vals is not None:
        node["vals"] = vals
    return node


@pytest.mark.parametrize(
    ("node", "tags", "expected"),
    [
        (leaf("t", "eq", "BTC"), {"t": "BTC"}, True),
        (leaf("t", "eq", "BTC"), {"t": "ETH"}, False),
        (leaf("t", "eq", "BTC"), None, False),
        (leaf("t", "neq", "BTC"), {"t": "ETH"}, True),
        (leaf("t", "neq", "BTC"), {}, True),  # a missing tag is not equal
        (leaf("t", "neq", "BTC"), {"t": "BTC"}, False),
        (leaf("t", "in", vals=["a", "b"]), {"t": "b"}, True),
        (leaf("t", "in", vals=["a", "b"]), {"t": "c"}, False),
        (leaf("t", "in", vals=["a", ""]), {}, True),  # a missing tag compares as ""
        (leaf("t", "nin", vals=["a"]), {"t": "c"}, True),
        (leaf("t", "nin", vals=["a"]), {"t": "a"}, False),
        (leaf("t", "ex"), {"t": ""}, True),
        (leaf("t", "ex"), {"u": "1"}, False),
        (leaf("t", "nex"), {"u": "1"}, True),
        (leaf("t", "nex"), {"t": "1"}, False),
        (leaf("t", "sw", "ab"), {"t": "abc"}, True),
        (leaf("t", "sw", "ab"), {"t": "cab"}, False),
        (leaf("t", "ew", "bc"), {"t": "abc"}, True),
        (leaf("t", "ew", "bc"), None, False),
        (leaf("t", "ct", "b"), {"t": "abc"}, True),
        (leaf("t", "ct", "x"), {"t": "abc"}, False),
        (leaf("p", "gt", "10"), {"p": "10.5"}, True),
        (leaf("p", "gt", "10"), {"p": "10"}, False),
        (leaf("p", "gte", "10"), {"p": "10.0"}, True),
        (leaf("p", "lt", "-1.5"), {"p": "-2"}, True),
        (leaf("p", "lte", "3"), {"p": "3"}, True),
        (leaf("p", "lte", "3"), {"p": "4"}, False),
        (leaf("p", "gt", "1"), {"p": "abc"}, False),  # not a number: no match
        (leaf("p", "gt", "1"), {"p": "NaN"}, False),
        (leaf("p", "gt", "1"), {"p": "1e9"}, False),  # no exponents
        (leaf("p", "gt", "x"), {"p": "5"}, False),  # a non-numeric bound matches nothing
        (leaf("p", "lt", "1"), {}, False),
    ],
)
def test_leaf_comparisons(
    node: dict[str, Any], tags: dict[str, str] | None, expected: bool
) -> None:
    assert compiled(node)(tags) is expected


def test_and_or_not() -> None:
    tree = {
        "op": "and",
        "nodes": [
            leaf("ticker", "eq", "BTC"),
            {"op": "or", "nodes": [leaf("p", "gt", "50000"), leaf("urgent", "ex")]},
            {"op": "not", "nodes": [leaf("src", "eq", "test")]},
        ],
    }
    match = compiled(tree)
    assert match({"ticker": "BTC", "p": "60000"})
    assert match({"ticker": "BTC", "p": "1", "urgent": "1"})
    assert not match({"ticker": "BTC", "p": "1"})
    assert not match({"ticker": "BTC", "p": "60000", "src": "test"})
    assert not match({"ticker": "ETH", "p": "60000"})
    assert compiled({"op": "or", "nodes": [leaf("a", "ex")]})({"a": "1"})


def test_protobuf_and_json_decode_to_the_same_filter() -> None:
    node = FilterNode(
        op="or",
        nodes=[FilterNode(key="a", cmp="in", vals=["x", "y"]), FilterNode(key="b", cmp="ex")],
    )
    from_protobuf = decode_filter(encode_message(node), binary=True)
    from_json = decode_filter(msgspec.json.encode(node), binary=False)
    assert from_protobuf == from_json == node
    assert decode_filter(b"", binary=True) is None
    assert decode_filter(b"null", binary=False) is None


@pytest.mark.parametrize(
    "tree",
    [
        {"op": "xor", "nodes": [leaf("a", "ex")]},
        {"op": "and", "nodes": []},
        {"op": "or"},
        {"op": "not", "nodes": [leaf("a", "ex"), leaf("b", "ex")]},
        {"op": "not", "nodes": []},
        {"key": "a"},  # a leaf without cmp
        leaf("a", "like", "x"),
        leaf("a", "eq"),  # eq needs val
        leaf("a", "eq", "x", vals=["y"]),
        leaf("a", "in"),  # in needs vals
        leaf("a", "in", vals=[]),
        leaf("a", "nin", "x", vals=["y"]),
        leaf("a", "ex", "x"),
        leaf("a", "nex", vals=["x"]),
        leaf("", "eq", "x"),  # a key is required but for ex/nex
        {"op": "and", "nodes": [leaf("a", "ex"), leaf("b", "gt")]},  # invalid deep inside
    ],
)
def test_invalid_filters_are_refused(tree: dict[str, Any]) -> None:
    with pytest.raises(FilterError):
        compiled(tree)


def test_key_is_optional_for_exists() -> None:
    assert compiled(leaf("", "ex"))({"": "1"})


@pytest.mark.parametrize(
    "data",
    [b"{", b"[]", b'{"op": 1}', b'{"vals": "x"}', b'"x"', b'{"nodes": [1]}'],
)
def test_malformed_json_is_refused(data: bytes) -> None:
    with pytest.raises(FilterError):
        decode_filter(data, binary=False)


@pytest.mark.parametrize("data", [b"\x0a\x05ab", b"\xff", b"\x32\x02\x0a"])
def test_malformed_protobuf_is_refused(data: bytes) -> None:
    with pytest.raises(FilterError):
        decode_filter(data, binary=True)


def _nested(depth: int) -> dict[str, Any]:
    tree: dict[str, Any] = leaf("a", "ex")
    for _ in range(depth - 1):
        tree = {"op": "not", "nodes": [tree]}
    return tree


def test_depth_is_bounded() -> None:
    assert compiled(_nested(MAX_DEPTH))({}) is (MAX_DEPTH % 2 == 0)
    with pytest.raises(FilterError, match="deeper"):
        compiled(_nested(MAX_DEPTH + 1))


def test_absurd_nesting_is_refused_without_crashing() -> None:
    deep = b'{"op":"not","nodes":[' * 50_000 + b"{}" + b"]}" * 50_000
    with pytest.raises(FilterError):
        node = decode_filter(deep, binary=False)
        assert node is not None
        compile_filter(node)
    proto = b""
    for _ in range(20_000):
        proto = b"\x32" + _uvarint(len(proto)) + proto
    with pytest.raises(FilterError):
        node = decode_filter(proto, binary=True)
        assert node is not None
        compile_filter(node)


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def test_size_is_bounded() -> None:
    wide = {"op": "or", "nodes": [leaf("a", "eq", str(i)) for i in range(MAX_NODES)]}
    with pytest.raises(FilterError, match="nodes"):
        compiled(wide)
    compiled({"op": "or", "nodes": [leaf("a", "eq", str(i)) for i in range(MAX_NODES - 1)]})
    many = leaf("a", "in", vals=[str(i) for i in range(MAX_VALS + 1)])
    with pytest.raises(FilterError, match="vals"):
        compiled(many)
    assert compiled(leaf("a", "in", vals=[str(i) for i in range(MAX_VALS)]))({"a": "999"})
