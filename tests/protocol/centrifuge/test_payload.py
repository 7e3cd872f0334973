"""compact_json: one JSON value in UTF-8, not too deep, returned compact."""

from __future__ import annotations

import json

import pytest

from tidings.protocol.centrifuge.payload import MAX_DEPTH, InvalidPayload, compact_json


@pytest.mark.parametrize(
    ("data", "compact"),
    [
        (b'{"a":[1,2,"\xc3\xa9"]}', b'{"a":[1,2,"\xc3\xa9"]}'),
        (b"42", b"42"),
        (b' "text" ', b'"text"'),
        (b'{\n  "a" : [ 1 ,\r\n\t2 ]\n}', b'{"a":[1,2]}'),
        (b'"keeps \\n escapes and  spaces"', b'"keeps \\n escapes and  spaces"'),
    ],
)
def test_valid_payloads_come_back_compact(data: bytes, compact: bytes) -> None:
    assert compact_json(data) == compact
    assert compact_json(bytearray(data)) == compact
    assert compact_json(memoryview(data)) == compact


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x00\x01\x02", "not valid JSON"),
        (b'"\xff"', "not valid UTF-8 at byte 1"),
        (b'"\xed\xa0\x80"', "not valid UTF-8"),
        (b'"\\ud800"', "not valid JSON"),
        (b'"a\nb"', "not valid JSON"),
        (b"{} {}", "not valid JSON"),
        (b'{"a":', "not valid JSON"),
        (b"", "not valid JSON"),
        (b"NaN", "not valid JSON"),
    ],
)
def test_invalid_payloads_say_why(data: bytes, problem: str) -> None:
    with pytest.raises(InvalidPayload, match=problem):
        compact_json(data)


def test_depth_is_bounded_and_brackets_in_strings_do_not_count() -> None:
    deepest = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert compact_json(deepest) == deepest
    with pytest.raises(InvalidPayload, match=f"nested deeper than {MAX_DEPTH}"):
        compact_json(b"[" + deepest + b"]")
    tricky = json.dumps(["[[[[" * 100, {"k]]": '\\"[{' * 100}, [[]] * 500]).encode()
    assert json.loads(compact_json(tricky)) == json.loads(tricky)
    for depth in (1_000, 100_000):  # beyond the recursion limit of the decoder
        with pytest.raises(InvalidPayload, match="nested deeper"):
            compact_json(b"[" * depth + b"]" * depth)
    with pytest.raises(InvalidPayload, match="nested deeper than 3"):
        compact_json(b'[{"a":[{}]}]', max_depth=3)
