"""Publication tags filters (a subscribe request's `tf`), as Centrifugo v6 evaluates them.

A filter is a `FilterNode` tree: a leaf compares one tag (`key`) with `cmp`
and `val` or `vals`; an inner node combines its `nodes` with `op` "and",
"or" or "not" (exactly one child). Leaf comparisons:

- `eq`/`neq`: the tag equals `val` (`neq` also matches a missing tag);
- `in`/`nin`: the tag's value is (not) among `vals` (a missing tag is "");
- `ex`/`nex`: the tag is (not) present;
- `sw`/`ew`/`ct`: the tag starts with, ends with, contains `val`;
- `gt`/`gte`/`lt`/`lte`: both the tag and `val` are decimal numbers and
  compare so (a missing or non-numeric tag never matches).

`compile_filter` validates a tree with Centrifugo's rules and turns it into a
matcher once per subscription; matching a publication is then a few calls.
Beyond Centrifugo's rules, a tree is bounded (`MAX_DEPTH`, `MAX_NODES`,
`MAX_VALS`) so that no subscriber makes each publication expensive.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from decimal import Decimal

import msgspec

from tidings.protocol.centrifuge.json_codec import MalformedFrame
from tidings.protocol.centrifuge.messages import FilterNode
from tidings.protocol.centrifuge.protobuf_codec import decode_message

#: Nesting of and/or/not nodes a filter may have (a leaf at depth 1 is a filter alone).
MAX_DEPTH = 16
#: Nodes (inner and leaves) in one filter.
MAX_NODES = 128
#: Values of all `in`/`nin` leaves of one filter together.
MAX_VALS = 1000

#: Publication tags (None: the publication has none).
Tags = Mapping[str, str] | None
#: A compiled filter: whether a publication with these tags reaches the subscriber.
Matcher = Callable[[Tags], bool]

_NO_TAGS: Mapping[str, str] = {}
# What a decimal looks like (no exponent, no NaN or infinities); bounded in length.
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_MAX_NUMBER = 64
_LOGICAL = ("and", "or", "not")


class FilterError(ValueError):
    """The filter is malformed or invalid: the subscription is refused (error 107)."""


def decode_filter(data: bytes, binary: bool) -> FilterNode | None:
    """The `tf` of a subscribe request (JSON, or protobuf bytes); None when absent."""
    if not data or data == b"null":
        return None
    try:
        if binary:
            node: FilterNode = decode_message(data, FilterNode)
        else:
            node = msgspec.json.decode(data, type=FilterNode)
    except (MalformedFrame, msgspec.DecodeError, RecursionError, TypeError, ValueError):
        raise FilterError("malformed tags filter") from None
    return node


def compile_filter(node: FilterNode) -> Matcher:
    """A matcher for `node`, validated; raises `FilterError` naming what is wrong."""
    counts = [0, 0]  # nodes, vals
    return _compile(node, 1, counts)


def _compile(node: FilterNode, depth: int, counts: list[int]) -> Matcher:
    if depth > MAX_DEPTH:
        raise FilterError(f"tags filter nested deeper than {MAX_DEPTH}")
    counts[0] += 1
    if counts[0] > MAX_NODES:
        raise FilterError(f"tags filter has more than {MAX_NODES} nodes")
    op = node.op
    if not op:
        return _leaf(node, counts)
    if op not in _LOGICAL:
        raise FilterError(f"invalid op: {op}")
    if op == "not":
        if len(node.nodes) != 1:
            raise FilterError("not node must have exactly one child")
        child = _compile(node.nodes[0], depth + 1, counts)
        return lambda tags: not child(tags)
    if not node.nodes:
        raise FilterError(f"{op} node must have at least one child")
    children = tuple(_compile(c, depth + 1, counts) for c in node.nodes)
    if len(children) == 1:
        return children[0]
    return _all(children) if op == "and" else _any(children)


def _all(children: tuple[Matcher, ...]) -> Matcher:
    def match(tags: Tags) -> bool:
        for child in children:  # noqa: SIM110 - a loop: no generator per publication
            if not child(tags):
                return False
        return True

    return match


def _any(children: tuple[Matcher, ...]) -> Matcher:
    def match(tags: Tags) -> bool:
        for child in children:  # noqa: SIM110 - a loop: no generator per publication
            if child(tags):
                return True
        return False

    return match


def _leaf(node: FilterNode, counts: list[int]) -> Matcher:
    cmp, key, val, vals = node.cmp, node.key, node.val, node.vals
    if not cmp:
        raise FilterError("leaf node must have cmp set")
    if cmp in ("in", "nin"):
        if not vals:
            raise FilterError(f"{cmp} comparison requires non-empty vals")
        if val:
            raise FilterError(f"{cmp} comparison must not use val")
        counts[1] += len(vals)
        if counts[1] > MAX_VALS:
            raise FilterError(f"tags filter has more than {MAX_VALS} vals")
    elif cmp in ("ex", "nex"):
        if val or vals:
            raise FilterError(f"{cmp} comparison must not use val or vals")
    elif cmp in ("eq", "neq", "sw", "ew", "ct", "gt", "gte", "lt", "lte"):
        if not val:
            raise FilterError(f"{cmp} comparison requires val")
        if vals:
            raise FilterError(f"{cmp} comparison must not use vals")
    else:
        raise FilterError(f"unknown comparison operator: {cmp}")
    if not key and cmp not in ("ex", "nex"):
        raise FilterError("leaf node requires key")
    if cmp == "eq":
        return lambda tags: (tags or _NO_TAGS).get(key) == val
    if cmp == "neq":
        return lambda tags: (tags or _NO_TAGS).get(key) != val
    if cmp in ("in", "nin"):
        members = frozenset(vals)
        if cmp == "in":
            return lambda tags: (tags or _NO_TAGS).get(key, "") in members
        return lambda tags: (tags or _NO_TAGS).get(key, "") not in members
    if cmp == "ex":
        return lambda tags: key in (tags or _NO_TAGS)
    if cmp == "nex":
        return lambda tags: key not in (tags or _NO_TAGS)
    if cmp in ("sw", "ew", "ct"):
        return _text(key, _TEXT_TESTS[cmp], val)
    return _numeric(key, cmp, _number(val))


_TEXT_TESTS: dict[str, Callable[[str, str], bool]] = {
    "sw": str.startswith,
    "ew": str.endswith,
    "ct": str.__contains__,
}


def _text(key: str, test: Callable[[str, str], bool], val: str) -> Matcher:
    def match(tags: Tags) -> bool:
        text = (tags or _NO_TAGS).get(key)
        return text is not None and test(text, val)

    return match


@functools.lru_cache(maxsize=4096)  # one publication's tag, read by every filtered subscriber
def _number(text: str) -> Decimal | None:
    if len(text) > _MAX_NUMBER or not _DECIMAL.fullmatch(text):
        return None
    return Decimal(text)


def _numeric(key: str, cmp: str, bound: Decimal | None) -> Matcher:
    if bound is None:
        return lambda tags: False  # as Centrifugo: a non-numeric val matches nothing
    test: Callable[[Decimal], bool] = {
        "gt": bound.__lt__,
        "gte": bound.__le__,
        "lt": bound.__gt__,
        "lte": bound.__ge__,
    }[cmp]

    def match(tags: Tags) -> bool:
        text = (tags or _NO_TAGS).get(key)
        if text is None:
            return False
        number = _number(text)
        return number is not None and test(number)

    return match
