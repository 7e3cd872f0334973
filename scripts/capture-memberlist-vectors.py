"""Capture memberlist test vectors from the Go peer (tests/peers/memberlist).

    sh scripts/build-gossip-peers.sh && .venv/bin/python scripts/capture-memberlist-vectors.py

Writes tests/protocol/memberlist/vectors/{frames,lzw}.jsonl: frames exchanged by Go
members over a recording in-memory transport (plain, compressed, encrypted, labelled
scenarios, and a failure: indirect pings, nacks, suspect, dead), at most a few per
kind of frame, and Go's LZW output for fixed inputs.
The vectors are committed; run this again only to refresh them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tidings.protocol.memberlist.keyring import Keyring
from tidings.protocol.memberlist.packet import decode_packet
from tidings.protocol.memberlist.stream import decode_stream

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "tests/peers/memberlist/memberlist-peer"
OUT = ROOT / "tests/protocol/memberlist/vectors"
KEYS = {
    "plain": "",
    "compressed": "",
    "encrypted": "0123456789abcdef",
    "encrypted-compressed": "0123456789abcdef0123456789abcdef",
    "labeled": "",
    "labeled-encrypted": "0123456789abcdef",
    "failure": "",
}
PER_KIND = 2


def shape(frame: dict[str, str]) -> tuple[str, ...]:
    """What makes two frames different enough to keep both."""
    raw = bytes.fromhex(frame["hex"])
    key = KEYS[frame["scenario"]]
    ring = Keyring([key.encode()]) if key else None
    label = "tidings" if frame["scenario"].startswith("labeled") else ""
    if frame["kind"] == "packet":
        names = [type(m).__name__ for m in decode_packet(raw, keyring=ring, label=label).messages]
    else:
        message, _ = decode_stream(
            raw, keyring=ring, label=label, expect_label=frame["to"] != "dialer"
        )
        names = [type(message).__name__]
    return (frame["scenario"], frame["kind"], raw[:1].hex(), *names)


def main() -> int:
    lines = subprocess.run(
        [str(PEER), "vectors"], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    kept: dict[tuple[str, ...], int] = {}
    frames = []
    for line in lines:
        frame = json.loads(line)
        if "scenario" not in frame:
            continue
        frame["key"] = KEYS[frame["scenario"]]
        frame["label"] = "tidings" if frame["scenario"].startswith("labeled") else ""
        kind = shape(frame)
        if kept.get(kind, 0) < PER_KIND:
            kept[kind] = kept.get(kind, 0) + 1
            frames.append(frame)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "frames.jsonl").write_text("".join(json.dumps(f, sort_keys=True) + "\n" for f in frames))
    lzw = subprocess.run(
        [str(PEER), "lzw"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    (OUT / "lzw.jsonl").write_text(lzw)
    print(f"{len(frames)} frames, {len(lzw.splitlines())} lzw vectors", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
