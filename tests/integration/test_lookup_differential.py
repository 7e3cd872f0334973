"""`tidings lookup` against real nsqlookupd v1.3.0: the same sessions, the same answers.

Every scripted TCP session (valid and invalid) and every HTTP call runs against
both; the answers are compared after normalising only what must differ (the ports
of each server, each connection's remote address, and the order of lists, which
nsqlookupd takes from Go's randomised map iteration). Deliberate differences are
listed in docs/queue-lookup.md and are not exercised here.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.nsq_processes import (
    NsqProcess,
    http_call,
    http_exchange,
    start_nsqlookupd,
    start_tidings_lookup,
)

MAGIC = b"  V1"
PEER = {"broadcast_address": "10.1.2.3", "tcp_port": 4150, "http_port": 4151, "version": "1.3.0"}

pytestmark = [pytest.mark.timeout(120)]


def identify(body: dict[str, Any] | bytes) -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return b"IDENTIFY\n" + struct.pack(">i", len(raw)) + raw


IDENTIFY = identify(PEER)

# Each step is sent once the previous step's answer has arrived; every step gets
# exactly one answer frame. A session stops at its first error frame.
SESSIONS: dict[str, list[bytes]] = {
    "ping before identify": [MAGIC + b"PING\n", b"PING\r\n", b"  PING  \n"],
    "full registration": [
        MAGIC + IDENTIFY,
        b"REGISTER t\n",
        b"REGISTER t c\n",
        b"REGISTER t c\n",
        b"UNREGISTER t c\n",
        b"UNREGISTER t\n",
        b"UNREGISTER never-registered\n",
        b"REGISTER t#ephemeral c#ephemeral\n",
        b"REGISTER t  c\n",
        b"PING\n",
    ],
    "bad magic": [b"  V2PING\n"],
    "http on the tcp port": [b"GET / HTTP/1.1\r\n\r\n"],
    "register before identify": [MAGIC + b"REGISTER t\n"],
    "unregister before identify": [MAGIC + b"UNREGISTER t c\n"],
    "unknown command": [MAGIC + b"FOO bar\n"],
    "lower-case command": [MAGIC + b"ping\n"],
    "empty line": [MAGIC + b"\n"],
    "identify twice": [MAGIC + IDENTIFY, IDENTIFY],
    "identify missing fields": [MAGIC + identify({"broadcast_address": "x", "tcp_port": 1})],
    "identify zero port": [MAGIC + identify({**PEER, "http_port": 0})],
    "identify not json": [MAGIC + identify(b"{nope")],
    "identify wrong type": [MAGIC + identify({**PEER, "tcp_port": "4150"})],
    "identify extra fields": [MAGIC + identify({**PEER, "extra": [1, 2]}), b"PING\n"],
    "register without params": [MAGIC + IDENTIFY, b"REGISTER\n"],
    "unregister without params": [MAGIC + IDENTIFY, b"UNREGISTER \n"],
    "bad topic": [MAGIC + IDENTIFY, b"REGISTER a/b\n"],
    "long topic": [MAGIC + IDENTIFY, b"REGISTER " + b"t" * 65 + b"\n"],
    "bad channel": [MAGIC + IDENTIFY, b"REGISTER t c*\n"],
    "bad ephemeral suffix": [MAGIC + IDENTIFY, b"UNREGISTER t c#other\n"],
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, NsqProcess]]:
    tmp: Path = tmp_path_factory.mktemp("lookup-differential")
    running = {"nsqlookupd": start_nsqlookupd(tmp), "tidings": start_tidings_lookup(tmp)}
    yield running
    for server in running.values():
        server.stop()


class Session:
    """A blocking TCP session that reads one answer frame per step."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""

    def _fill(self, size: int) -> bool:
        while len(self.buffer) < size:
            data = self.sock.recv(65536)
            if not data:
                return False
            self.buffer += data
        return True

    def frame(self) -> bytes | None:
        if not self._fill(4):
            return None
        (size,) = struct.unpack(">i", self.buffer[:4])
        if not self._fill(4 + size):
            return None
        frame, self.buffer = self.buffer[4 : 4 + size], self.buffer[4 + size :]
        return frame

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def normalise_frame(frame: bytes | None) -> Any:
    if frame is None or not frame.startswith(b"{"):
        return frame
    answer = json.loads(frame)
    return {**answer, "tcp_port": "<lookupd tcp>", "http_port": "<lookupd http>"}


def run_session(server: NsqProcess, steps: list[bytes]) -> list[Any]:
    session = Session(server.tcp_port)
    transcript: list[Any] = []
    try:
        for step in steps:
            session.sock.sendall(step)
            frame = session.frame()
            transcript.append(normalise_frame(frame))
            if frame is None or frame.startswith(b"E_"):
                transcript.append("closed" if session.closed_by_server() else "open")
                break
        else:
            session.sock.shutdown(socket.SHUT_WR)  # both end the session on EOF
            transcript.append("closed" if session.closed_by_server() else "open")
    finally:
        session.close()
    return transcript


@pytest.mark.parametrize("name", list(SESSIONS))
def test_tcp_session(servers: dict[str, NsqProcess], name: str) -> None:
    expected = run_session(servers["nsqlookupd"], SESSIONS[name])
    assert run_session(servers["tidings"], SESSIONS[name]) == expected
    assert expected[-1] == "closed"


# -- HTTP ----------------------------------------------------------------------------------

REGISTRATIONS = [
    b"REGISTER t1 c1\n",
    b"REGISTER t1 c2\n",
    b"REGISTER t2\n",
    b"REGISTER e c#ephemeral\n",
]
SECOND_NODE = {**PEER, "broadcast_address": "10.9.9.9", "http_port": 5151}

CALLS: list[tuple[str, str]] = [
    ("GET", "/ping"),
    ("GET", "/info"),
    ("GET", "/topics"),
    ("GET", "/nodes"),
    ("GET", "/lookup?topic=t1"),
    ("GET", "/lookup?topic=t2"),
    ("GET", "/lookup?topic=e"),
    ("GET", "/lookup?topic=missing"),
    ("GET", "/lookup?topic="),
    ("GET", "/lookup"),
    ("GET", "/lookup?topic=%zz"),
    ("GET", "/lookup?topic=t1;x"),
    ("GET", "/lookup?topic=t1&topic=t2"),
    ("GET", "/lookup?topic=*"),
    ("GET", "/channels?topic=t1"),
    ("GET", "/channels?topic=missing"),
    ("GET", "/channels"),
    ("GET", "/nope"),
    ("POST", "/ping"),
    ("GET", "/topic/create?topic=x"),
    ("POST", "/lookup?topic=t1"),
    ("POST", "/topic/create"),
    ("POST", "/topic/create?topic=bad/name"),
    ("POST", "/topic/create?topic=created"),
    ("POST", "/channel/create?topic=created"),
    ("POST", "/channel/create?topic=created&channel=bad/name"),
    ("POST", "/channel/create?topic=bad/name&channel=c"),
    ("POST", "/channel/create?topic=created&channel=made"),
    ("GET", "/lookup?topic=created"),
    ("GET", "/channels?topic=created"),
    ("POST", "/channel/delete?topic=created&channel=missing"),
    ("POST", "/channel/delete?topic=created&channel=made"),
    ("POST", "/channel/delete"),
    ("POST", "/topic/delete?topic=created"),
    ("POST", "/topic/delete?topic=never"),
    ("POST", "/topic/delete"),
    ("POST", "/topic/tombstone?topic=t1"),
    ("POST", "/topic/tombstone?node=x"),
    ("POST", "/topic/tombstone?topic=t1&node=10.9.9.9:5151"),
    ("GET", "/lookup?topic=t1"),
    ("GET", "/nodes"),
    ("GET", "/topics"),
    ("GET", "/topics?x=%zz"),  # parameters are only parsed where they are read
    ("GET", "/debug"),
]

# Routing details: redirects, OPTIONS, HEAD, Allow headers (compared with headers).
ROUTING: list[tuple[str, str]] = [
    ("GET", "/lookup/?topic=t1"),
    ("GET", "/LOOKUP?topic=t1"),
    ("GET", "/Topics/"),
    ("POST", "/topic/create/?topic=x"),
    ("GET", "/topic/create/"),
    ("OPTIONS", "/lookup"),
    ("OPTIONS", "/topic/delete"),
    ("OPTIONS", "/nope"),
    ("HEAD", "/ping"),
    ("PUT", "/ping"),
    ("DELETE", "/topic/delete?topic=t1"),
    ("GET", "/"),
    ("GET", "/debug/"),
]
ROUTING_HEADERS = ("location", "allow", "x-nsq-content-type")


VARYING = {"remote_address", "id", "last_update"}  # per connection / per moment


def normalise_body(body: Any) -> Any:
    """Sort lists (Go map order); blank what differs per connection or moment."""
    if isinstance(body, dict):
        body = {k: (f"<{k}>" if k in VARYING else normalise_body(v)) for k, v in body.items()}
        if body.get("tombstoned") is True:
            body["tombstoned_at"] = "<tombstoned_at>"
        if "topics" in body and "tombstones" in body:  # a node: keep the pairs together
            pairs = sorted(zip(body["topics"], body["tombstones"], strict=True))
            body["topics"], body["tombstones"] = [t for t, _ in pairs], [b for _, b in pairs]
        return body
    if isinstance(body, list):
        return sorted(
            (normalise_body(v) for v in body), key=lambda v: json.dumps(v, sort_keys=True)
        )
    return body


def test_http_api(servers: dict[str, NsqProcess]) -> None:
    # The same two registered nodes on both servers, connected for the whole test.
    sessions: list[Session] = []
    for server in servers.values():
        for node in (PEER, SECOND_NODE):
            session = Session(server.tcp_port)
            sessions.append(session)
            session.sock.sendall(MAGIC + identify(node))
            assert session.frame() is not None
            for line in REGISTRATIONS:
                session.sock.sendall(line)
                assert session.frame() == b"OK"
    try:
        for method, path in CALLS:
            answers = {}
            for name, server in servers.items():
                status, body = http_call(server.http_port, path, method=method)
                answers[name] = (status, normalise_body(body))
            assert answers["tidings"] == answers["nsqlookupd"], (method, path)
    finally:
        for session in sessions:
            session.close()


@pytest.mark.parametrize(("method", "path"), ROUTING)
def test_http_routing(servers: dict[str, NsqProcess], method: str, path: str) -> None:
    answers = []
    for server in servers.values():
        status, headers, body = http_exchange(server.http_port, path, method)
        kept = {h: headers.get(h) for h in ROUTING_HEADERS}
        json_body = body.startswith(b"{")
        answers.append((status, kept, body if json_body or not body else "<text>"))
    assert answers[0] == answers[1]


@pytest.mark.parametrize("accept", ["application/vnd.nsq; version=1.0", "application/json"])
@pytest.mark.parametrize("path", ["/topics", "/ping", "/lookup?topic=none"])
def test_http_headers(servers: dict[str, NsqProcess], accept: str, path: str) -> None:
    seen = []
    for server in servers.values():
        status, headers, _ = http_exchange(server.http_port, path, headers={"Accept": accept})
        seen.append((status, headers.get("x-nsq-content-type"), headers.get("content-type")))
    assert seen[0] == seen[1]


def test_json_escaping_is_byte_identical(servers: dict[str, NsqProcess]) -> None:
    # Go escapes <, > and & in JSON strings; a hostname is free text from the node.
    raw = []
    for server in servers.values():
        session = Session(server.tcp_port)
        try:
            session.sock.sendall(MAGIC + identify({**PEER, "hostname": "<b>&co</b>\u2028é"}))
            assert session.frame() is not None
            session.sock.sendall(b"REGISTER escaping\n")
            assert session.frame() == b"OK"
            _, _, body = http_exchange(server.http_port, "/lookup?topic=escaping")
            remote = json.loads(body)["producers"][0]["remote_address"]
            raw.append(body.replace(remote.encode(), b"<remote>"))
        finally:
            session.close()
    assert b"\\u003cb\\u003e\\u0026co" in raw[0]
    assert raw[0] == raw[1]
