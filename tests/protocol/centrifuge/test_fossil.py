"""Fossil deltas: round trips in Python, and the SDK's own JavaScript applier as the oracle."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from tidings.protocol.centrifuge.fossil import DeltaError, apply, checksum, encode

SDK = (
    Path(__file__).resolve().parents[3]
    / "build/npm/node_modules/centrifuge/build/protobuf/index.js"
)


def _document(rng: random.Random, n: int) -> dict[str, object]:
    return {
        "id": n,
        "price": round(rng.uniform(1, 1000), 2),
        "name": f"item-{n}",
        "tags": ["é", "日本", "ok"][: n % 4],
        "rows": [{"k": i, "v": rng.randint(0, 10)} for i in range(40)],
    }


def _cases() -> list[tuple[bytes, bytes]]:
    rng = random.Random(7)
    cases = [
        (b"", b""),
        (b"", b"hello"),
        (b"hello", b""),
        (b"x" * 100, b"x" * 100),
        (b"abcdefghijklmnopqrstuvwxyz" * 4, b"0123" + b"abcdefghijklmnopqrstuvwxyz" * 4 + b"!"),
        ("日本語のテキスト".encode() * 10, "日本語のテキスト!".encode() * 10),
        (rng.randbytes(3000), rng.randbytes(2000)),
    ]
    doc = _document(rng, 1)
    for n in range(20):
        new = dict(doc, price=round(rng.uniform(1, 1000), 2), id=n)
        cases.append((json.dumps(doc).encode(), json.dumps(new).encode()))
        doc = new
    return cases


@pytest.mark.parametrize(("source", "target"), _cases())
def test_round_trip(source: bytes, target: bytes) -> None:
    assert apply(source, encode(source, target)) == target


def test_similar_documents_give_small_deltas_of_text() -> None:
    rng = random.Random(1)
    doc = _document(rng, 5)
    source = json.dumps(doc, ensure_ascii=False).encode()
    target = json.dumps(dict(doc, price=1.5), ensure_ascii=False).encode()
    delta = encode(source, target)
    assert len(delta) < len(target) // 10
    delta.decode()  # UTF-8: literals never split a character


def test_checksum_of_known_values() -> None:
    assert checksum(b"") == 0
    assert checksum(b"\x00\x00\x00\x01") == 1
    assert checksum(b"\x01") == 0x01000000
    assert checksum(b"\xff\xff\xff\xff\x00\x00\x00\x01") == 0


@pytest.mark.parametrize(
    "delta",
    [b"", b"5", b"5\n", b"5\n5:ab", b"3\n3@100,0;", b"2\n2:ab0;", b"2\n2:abZ;", b"1\n1?a"],
)
def test_broken_deltas_are_refused(delta: bytes) -> None:
    with pytest.raises(DeltaError):
        apply(b"source text", delta)


def test_sdk_applies_our_deltas() -> None:
    """The npm SDK's fossil applier (its protobuf codec) rebuilds every target from our deltas."""
    node = shutil.which("node")
    assert node, "node is needed (scripts/setup-test-deps.sh)"
    assert SDK.exists(), "centrifuge npm SDK missing: run scripts/vendor-sdk.sh"
    cases = _cases()
    payload = [[list(s), list(encode(s, t))] for s, t in cases]
    script = (
        "const {Centrifuge} = require(process.argv[1]);"
        "const codec = new Centrifuge('ws://127.0.0.1:9/x')._codec;"
        "let input = ''; process.stdin.on('data', d => input += d);"
        "process.stdin.on('end', () => { const out = JSON.parse(input).map(([s, d]) =>"
        " Array.from(codec.applyDeltaIfNeeded({delta: true, data: new Uint8Array(d)},"
        " new Uint8Array(s)).newData));"
        " process.stdout.write(JSON.stringify(out)); });"
    )
    done = subprocess.run(
        [node, "-e", script, str(SDK)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rebuilt = [bytes(t) for t in json.loads(done.stdout)]
    assert rebuilt == [t for _, t in cases]
