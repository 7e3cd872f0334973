"""Bytes on the wire with and without fossil delta compression, on a realistic stream.

Usage::

    .venv/bin/python benchmarks/delta_bandwidth.py [--publications 1000]

A fresh `tidings serve` has a namespace `live` with `allowed_delta_types =
["fossil"]` and `delta_publish = true`. Four WebSocket subscribers read the
same channel: JSON and Protobuf, each with and without `delta: "fossil"`.
The API then publishes `--publications` versions of a ~2 KB JSON document
(a match: score, clock, 18 players' stats), each changing a few fields, one
at a time (every publication is its own frame). The table shows the bytes of
the WebSocket frame payloads each subscriber received after its subscribe
reply. The JSON delta subscriber's data is rebuilt from the deltas (with
tidings' own `fossil.apply`) and checked against what was published; the
npm SDK does the same in tests/integration/test_delta.py.

Prints a table and writes benchmarks/results/delta_bandwidth.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import platform
import random
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import msgspec
import websockets

from tidings.protocol.centrifuge.fossil import apply, encode
from tidings.protocol.centrifuge.messages import Command, ConnectRequest, Reply, SubscribeRequest
from tidings.protocol.centrifuge.protobuf_codec import (
    decode_message,
    encode_message,
    read_uvarint,
    uvarint,
)

API_KEY = "bench-api-key"
SECRET = "bench-secret-0123456789-0123456789-0123"
CHANNEL = "live:match"
RESULTS = Path(__file__).parent / "results" / "delta_bandwidth.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def match_versions(count: int, seed: int = 1) -> list[dict[str, Any]]:
    """A ~2 KB match document, then `count` versions each changing a few fields."""
    rng = random.Random(seed)
    positions = ["GK", "DF", "DF", "DF", "DF", "MF", "MF", "MF", "FW", "FW", "FW"]
    players = [
        {
            "id": 1000 + i,
            "team": "home" if i < 9 else "away",
            "number": i % 11 + 1,
            "position": positions[i % 11],
            "passes": 0,
            "shots": 0,
            "distance_m": 0,
            "cards": [],
        }
        for i in range(18)
    ]
    doc: dict[str, Any] = {
        "match_id": "2026-11-30-ber-mad",
        "competition": "Example League",
        "home": "Berlin",
        "away": "Madrid",
        "score": {"home": 0, "away": 0},
        "clock": {"minute": 0, "second": 0, "period": 1},
        "possession": {"home": 50, "away": 50},
        "players": players,
    }
    out = []
    for n in range(count):
        doc = json.loads(json.dumps(doc))
        seconds = n * 5
        doc["clock"] = {"minute": seconds // 60, "second": seconds % 60, "period": 1 + n // 540}
        for player in rng.sample(doc["players"], 3):
            player["passes"] += 1
            player["distance_m"] += rng.randint(5, 40)
        if rng.random() < 0.02:
            doc["score"][rng.choice(["home", "away"])] += 1
        home = rng.randint(40, 60)
        doc["possession"] = {"home": home, "away": 100 - home}
        out.append(doc)
    return out


class Subscriber:
    def __init__(self, name: str, protobuf: bool, delta: bool) -> None:
        self.name, self.protobuf, self.delta = name, protobuf, delta
        self.bytes = 0
        self.frames: list[bytes] = []
        self.ws: Any = None

    async def open(self, url: str, token: str) -> None:
        subprotocols = ["centrifuge-protobuf"] if self.protobuf else None
        self.ws = await websockets.connect(url, subprotocols=subprotocols, max_size=None)
        connect = Command(id=1, connect=ConnectRequest(token=token))
        subscribe = Command(
            id=2, subscribe=SubscribeRequest(channel=CHANNEL, delta="fossil" if self.delta else "")
        )
        for command in (connect, subscribe):
            await self.ws.send(self._encode(command))
            await self._until_reply(command.id)

    def _encode(self, command: Command) -> bytes | str:
        if self.protobuf:
            body = encode_message(command)
            return uvarint(len(body)) + body
        return msgspec.json.encode(command).decode()

    async def _until_reply(self, command_id: int) -> None:
        while True:
            frame = await self.ws.recv()
            for reply in self._replies(frame):
                if reply.get("id") == command_id:
                    assert "error" not in reply, reply
                    if command_id == 2 and self.delta and not self.protobuf:
                        assert reply["subscribe"].get("delta") is True, reply
                    return

    def _replies(self, frame: bytes | str) -> list[dict[str, Any]]:
        if isinstance(frame, str):
            return [json.loads(line) for line in frame.split("\n") if line]
        replies, pos = [], 0
        while pos < len(frame):
            length, pos = read_uvarint(frame, pos, len(frame))
            reply = decode_message(frame[pos : pos + length], Reply)
            if reply.push is not None and reply.push.pub is not None:
                replies.append({"push": {"pub": True}})
            else:
                replies.append({"id": reply.id})
            pos += length
        return replies

    async def read(self, count: int) -> None:
        pubs = 0
        while pubs < count:
            frame = await self.ws.recv()
            data = frame.encode() if isinstance(frame, str) else frame
            self.bytes += len(data)
            self.frames.append(data)
            pubs += sum(1 for r in self._replies(frame) if "pub" in r.get("push", {}))


def rebuild_json_deltas(frames: list[bytes]) -> list[Any]:
    """The documents a JSON delta subscriber reconstructs from its frames."""
    previous = b""
    out = []
    for frame in frames:
        for line in frame.split(b"\n"):
            reply = json.loads(line)
            pub = reply.get("push", {}).get("pub")
            if pub is None:
                continue
            text = pub["data"].encode()
            previous = apply(previous, text) if pub.get("delta") else text
            out.append(json.loads(previous))
    return out


async def run(count: int) -> dict[str, Any]:
    port, api_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "tidings.toml"
        config.write_text(
            f'address = "127.0.0.1"\nport = {port}\napi_port = {api_port}\n'
            f'api_key = "{API_KEY}"\ntoken_hmac_secret = "{SECRET}"\ndata_dir = "{tmp}/data"\n'
            "[namespaces.live]\nhistory_size = 10\nhistory_ttl = 60.0\nforce_recovery = true\n"
            'allow_subscribe_for_client = true\nallowed_delta_types = ["fossil"]\n'
            "delta_publish = true\n"
        )
        log = (Path(tmp) / "log").open("w")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "tidings", "serve", "--config", str(config)),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await asyncio.sleep(0.5)
            for _ in range(100):
                if "tidings ready" in (Path(tmp) / "log").read_text():
                    break
                await asyncio.sleep(0.1)
            token = jwt.encode({"sub": "bench"}, SECRET, algorithm="HS256")
            url = f"ws://127.0.0.1:{port}/connection/websocket"
            subs = [
                Subscriber("json", False, False),
                Subscriber("json + fossil", False, True),
                Subscriber("protobuf", True, False),
                Subscriber("protobuf + fossil", True, True),
            ]
            for sub in subs:
                await sub.open(url, token)
            docs = match_versions(count)
            readers = [asyncio.create_task(sub.read(count)) for sub in subs]
            headers = {"X-API-Key": API_KEY}
            started = time.perf_counter()
            async with aiohttp.ClientSession(headers=headers) as http:
                for doc in docs:
                    body = {"channel": CHANNEL, "data": doc}
                    async with http.post(
                        f"http://127.0.0.1:{api_port}/api/publish", json=body
                    ) as r:
                        assert r.status == 200
            await asyncio.wait_for(asyncio.gather(*readers), 120)
            elapsed = time.perf_counter() - started
            assert rebuild_json_deltas(subs[1].frames) == docs, "JSON deltas do not rebuild"
            for sub in subs:
                await sub.ws.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 10)
            log.close()
    texts = [json.dumps(d, separators=(",", ":")).encode() for d in docs]
    clock = time.perf_counter()
    for before, after in itertools.pairwise(texts):
        encode(before, after)
    encode_us = (time.perf_counter() - clock) / max(1, len(texts) - 1) * 1e6
    doc_size = sum(len(json.dumps(d, separators=(",", ":"))) for d in docs) / count
    return {
        "publications": count,
        "document_bytes_avg": round(doc_size),
        "seconds": round(elapsed, 2),
        "fossil_encode_us_per_publication": round(encode_us),
        "received_bytes": {sub.name: sub.bytes for sub in subs},
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--publications", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(run(args.publications))
    received = result["received_bytes"]
    print(f"{result['publications']} publications of ~{result['document_bytes_avg']} B JSON")
    print(f"{'subscriber':<20} {'bytes received':>15} {'per publication':>16} {'saved':>7}")
    for name, size in received.items():
        base = received[name.replace(" + fossil", "")]
        saved = f"{100 * (1 - size / base):.1f}%" if "fossil" in name else ""
        print(f"{name:<20} {size:>15,} {size / result['publications']:>16,.0f} {saved:>7}")
    print(f"fossil encode: {result['fossil_encode_us_per_publication']} us per publication")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
