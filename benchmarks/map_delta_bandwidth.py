"""Bytes on the wire with and without per-key fossil deltas, on a realistic map stream.

Usage::

    .venv/bin/python benchmarks/map_delta_bandwidth.py [--keys 20] [--publications 1000]

A fresh `tidings serve` has a map namespace `board` with
`allowed_delta_types = ["fossil"]`. The map holds `--keys` match documents
(~2 KB JSON each, as in `delta_bandwidth.py`); four WebSocket map
subscribers (JSON and Protobuf, each with and without `delta: "fossil"`)
take the state, then the API's `map_publish` with `delta: true` sends
`--publications` changes, round robin over the keys, each a new version of
its document with a few fields changed. The table shows the bytes of the
WebSocket frame payloads each subscriber received after its subscribe
reply. The JSON delta subscriber's values are rebuilt per key (from the
state, then the deltas, with tidings' own `fossil.apply`) and checked
against what was published; the npm SDK does the same in
tests/integration/test_map_delta_sdk.py.

Prints a table and writes benchmarks/results/map_delta_bandwidth.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import msgspec
import websockets
from delta_bandwidth import API_KEY, SECRET, free_port, match_versions

from tidings.protocol.centrifuge.fossil import apply
from tidings.protocol.centrifuge.messages import Command, ConnectRequest, Reply, SubscribeRequest
from tidings.protocol.centrifuge.protobuf_codec import (
    decode_message,
    encode_message,
    read_uvarint,
    uvarint,
)

CHANNEL = "board:matches"
RESULTS = Path(__file__).parent / "results" / "map_delta_bandwidth.json"


class MapSubscriber:
    def __init__(self, name: str, protobuf: bool, delta: bool) -> None:
        self.name, self.protobuf, self.delta = name, protobuf, delta
        self.bytes = 0
        self.frames: list[bytes] = []
        self.state: list[dict[str, Any]] = []
        self.ws: Any = None

    async def open(self, url: str, token: str) -> None:
        subprotocols = ["centrifuge-protobuf"] if self.protobuf else None
        self.ws = await websockets.connect(url, subprotocols=subprotocols, max_size=None)
        await self._call(Command(id=1, connect=ConnectRequest(token=token)))
        request = SubscribeRequest(
            channel=CHANNEL, type=1, phase=2, limit=1000, delta="fossil" if self.delta else ""
        )
        reply = await self._call(Command(id=2, subscribe=request))
        if not self.protobuf:
            result = reply["subscribe"]
            assert result.get("phase", 0) == 0, "the state did not fit one reply"
            assert bool(result.get("delta")) == self.delta, result
            self.state = result.get("state", [])

    async def _call(self, command: Command) -> dict[str, Any]:
        if self.protobuf:
            body = encode_message(command)
            await self.ws.send(uvarint(len(body)) + body)
        else:
            await self.ws.send(msgspec.json.encode(command).decode())
        while True:
            for reply in self._replies(await self.ws.recv()):
                if reply.get("id") == command.id:
                    assert "error" not in reply, reply
                    return reply

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


def rebuild(state: list[dict[str, Any]], frames: list[bytes]) -> dict[str, Any]:
    """The values a JSON delta subscriber holds per key after its frames."""
    values = {entry["key"]: entry["data"].encode() for entry in state}
    for frame in frames:
        for line in frame.split(b"\n"):
            pub = json.loads(line).get("push", {}).get("pub")
            if pub is None:
                continue
            text = pub["data"].encode()
            values[pub["key"]] = apply(values[pub["key"]], text) if pub.get("delta") else text
    return {key: json.loads(value) for key, value in values.items()}


async def run(keys: int, count: int) -> dict[str, Any]:
    port, api_port = free_port(), free_port()
    versions = [match_versions(count // keys + 2, seed=k) for k in range(keys)]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "tidings.toml"
        config.write_text(
            f'address = "127.0.0.1"\nport = {port}\napi_port = {api_port}\n'
            f'api_key = "{API_KEY}"\ntoken_hmac_secret = "{SECRET}"\ndata_dir = "{tmp}/data"\n'
            '[namespaces.board]\nsubscription_type = "map"\nmap_stream_size = 100\n'
            'map_stream_ttl = "5m"\nallow_subscribe_for_client = true\n'
            'allowed_delta_types = ["fossil"]\n'
        )
        log = (Path(tmp) / "log").open("w")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "tidings", "serve", "--config", str(config)),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            for _ in range(100):
                await asyncio.sleep(0.1)
                if "tidings ready" in (Path(tmp) / "log").read_text():
                    break
            headers = {"X-API-Key": API_KEY}
            async with aiohttp.ClientSession(headers=headers) as http:

                async def put(key: int, doc: dict[str, Any]) -> None:
                    body = {"channel": CHANNEL, "key": f"m{key}", "data": doc, "delta": True}
                    async with http.post(
                        f"http://127.0.0.1:{api_port}/api/map_publish", json=body
                    ) as r:
                        assert r.status == 200 and "error" not in await r.json()

                for key in range(keys):
                    await put(key, versions[key][0])
                token = jwt.encode({"sub": "bench"}, SECRET, algorithm="HS256")
                url = f"ws://127.0.0.1:{port}/connection/websocket"
                subs = [
                    MapSubscriber("json", False, False),
                    MapSubscriber("json + fossil", False, True),
                    MapSubscriber("protobuf", True, False),
                    MapSubscriber("protobuf + fossil", True, True),
                ]
                for sub in subs:
                    await sub.open(url, token)
                readers = [asyncio.create_task(sub.read(count)) for sub in subs]
                started = time.perf_counter()
                latest = {f"m{k}": versions[k][0] for k in range(keys)}
                for n in range(count):
                    key, version = n % keys, n // keys + 1
                    await put(key, versions[key][version])
                    latest[f"m{key}"] = versions[key][version]
                await asyncio.wait_for(asyncio.gather(*readers), 120)
                elapsed = time.perf_counter() - started
            assert rebuild(subs[1].state, subs[1].frames) == latest, "JSON deltas do not rebuild"
            for sub in subs:
                await sub.ws.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 10)
            log.close()
    doc_size = sum(len(json.dumps(v[1], separators=(",", ":"))) for v in versions) / keys
    return {
        "keys": keys,
        "publications": count,
        "document_bytes_avg": round(doc_size),
        "seconds": round(elapsed, 2),
        "received_bytes": {sub.name: sub.bytes for sub in subs},
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--publications", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(run(args.keys, args.publications))
    received = result["received_bytes"]
    print(
        f"{result['publications']} changes of {result['keys']} keys,"
        f" ~{result['document_bytes_avg']} B JSON each"
    )
    print(f"{'subscriber':<20} {'bytes received':>15} {'per change':>11} {'saved':>7}")
    for name, size in received.items():
        base = received[name.replace(" + fossil", "")]
        saved = f"{100 * (1 - size / base):.1f}%" if "fossil" in name else ""
        print(f"{name:<20} {size:>15,} {size / result['publications']:>11,.0f} {saved:>7}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
