"""Fuzz the payload check: any bytes -> compact JSON, or InvalidPayload and nothing else."""

from __future__ import annotations

import json

import atheris

with atheris.instrument_imports(include=["tidings"]):
    from tidings.protocol.centrifuge.payload import MAX_DEPTH, InvalidPayload, compact_json

SEEDS = [
    b'{\n  "text": "hi",\n  "n": [1, 2.5e3, -0, null, true, false]\n}',
    b'["x",\n{"channel":"#bob","pub":{"data":{}}}\n]',
    b'"\\u00e9\\ud83d\\ude00 \\" \\\\ [[{"',
    b"[" * 130 + b"]" * 130,
    b'{"a":"\xc3\xa9","b":[{"c":[]}]}',
]


def one_input(data: bytes) -> None:
    try:
        out = compact_json(data)
    except InvalidPayload:
        return
    # Nothing that would break a line-framed stream or a UTF-8 text frame.
    assert b"\n" not in out and b"\r" not in out, out
    out.decode("utf-8")
    assert compact_json(out) == out, "compact is a fixed point"
    assert json.loads(out) == json.loads(data) or out != out, (data, out)
    assert _depth(json.loads(out)) <= MAX_DEPTH


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


def main() -> None:
    from tests.fuzz.harness import run

    run(one_input, SEEDS)


if __name__ == "__main__":
    main()
