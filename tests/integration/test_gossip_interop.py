"""A tidings gossip member in a cluster of real Go memberlist members (tests/peers/memberlist).

Both directions: each side lists the other as alive, each detects the other's death
(kill -9 / abrupt stop) within memberlist's default timing, a graceful leave is seen
as a leave, and with encryption the same holds with a shared key while a wrong key
is refused with a clear log line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.polling import until
from tidings.cluster.gossip import GossipError, GossipMember
from tidings.protocol.memberlist.keyring import Keyring
from tidings.protocol.memberlist.member import MemberEvent, MemberEventKind
from tidings.protocol.memberlist.messages import NodeStateType

ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT / "tests/peers/memberlist/memberlist-peer"
KEY = b"0123456789abcdef0123456789abcdef"
# memberlist defaults, 3 members: probe 1 s, suspicion 4 s (no confirmations possible),
# TCP fallback 10 s; generous for a loaded CI machine.
DETECTION_LIMIT = 30.0


@pytest.fixture(scope="module", autouse=True)
def go_peer_built() -> None:
    subprocess.run(["sh", str(ROOT / "scripts/build-gossip-peers.sh")], check=True, timeout=600)
    assert PEER.exists()


class GoPeer:
    """A Go memberlist member; its membership events arrive as JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str, port: int) -> None:
        self.proc = proc
        self.name = name
        self.port = port
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(
        cls,
        name: str,
        join: list[int] | None = None,
        key: bytes | None = None,
        label: str = "",
        port: int = 0,
    ) -> GoPeer:
        port = port or free_port()
        args = [str(PEER), "node", "-name", name, "-bind", "127.0.0.1", "-port", str(port)]
        if join:
            args += ["-join", ",".join(f"127.0.0.1:{p}" for p in join)]
        if key:
            args += ["-keys", base64.b64encode(key).decode()]
        if label:
            args += ["-label", label]
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        peer = cls(proc, name, port)
        await peer.wait_for(lambda e: e["event"] == "ready", 15)
        return peer

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))
                self._changed.set()

    async def wait_for(self, match: Callable[[dict[str, Any]], bool], limit: float) -> None:
        async with asyncio.timeout(limit):
            while not any(match(e) for e in self.events):
                self._changed.clear()
                await self._changed.wait()

    def failed(self, name: str) -> bool:
        """Whether memberlist logged that it found `name` failed (not left)."""
        return any(
            e["event"] == "log"
            and (
                f"Marking {name} as failed" in e["line"]
                or f"Suspect {name} has failed" in e["line"]
            )
            for e in self.events
        )

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def close(self) -> None:
        self.kill()
        await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def cluster(
    key: bytes | None = None, label: str = ""
) -> AsyncIterator[tuple[GoPeer, GoPeer]]:
    first = await GoPeer.start("go-1", key=key, label=label)
    second = await GoPeer.start("go-2", join=[first.port], key=key, label=label)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


def alive_names(member: GossipMember) -> set[str]:
    return {m.name for m in member.members() if m.state is NodeStateType.ALIVE}


def died(events: list[MemberEvent], name: str) -> bool:
    return any(e.kind is MemberEventKind.DEAD and e.member.name == name for e in events)


@pytest.mark.parametrize(
    ("key", "label"),
    [(None, ""), (KEY, ""), (KEY, "tidings-cluster")],
    ids=["plain", "encrypted", "encrypted-labelled"],
)
async def test_tidings_and_go_members_see_each_other_and_detect_deaths(
    key: bytes | None, label: str
) -> None:
    async with cluster(key, label) as (first, second):
        events: list[MemberEvent] = []
        member = GossipMember(
            "tidings-1",
            ("127.0.0.1", free_port()),
            keyring=Keyring([key]) if key else None,
            label=label,
            on_event=events.append,
        )
        await member.start()
        try:
            assert await member.join([("127.0.0.1", first.port)]) == 1
            await until(lambda: alive_names(member) == {"tidings-1", "go-1", "go-2"}, 15)
            for peer in (first, second):
                await peer.wait_for(lambda e: e["event"] == "join" and e["name"] == "tidings-1", 15)
            # Go dies (kill -9): tidings declares it dead.
            second.kill()
            await until(lambda: died(events, "go-2"), DETECTION_LIMIT)
            assert not died(events, "go-1")
        finally:
            await member.stop()
        # tidings dies (sockets gone, no leave): go-1, now alone, finds it failed.
        await first.wait_for(
            lambda e: e["event"] == "leave" and e["name"] == "tidings-1", DETECTION_LIMIT
        )
        assert first.failed("tidings-1")


async def test_graceful_leave_is_seen_as_left_by_go() -> None:
    async with cluster() as (first, second):
        member = GossipMember("tidings-2", ("127.0.0.1", free_port()))
        await member.start()
        try:
            await member.join([("127.0.0.1", second.port)])
            await first.wait_for(lambda e: e["event"] == "join" and e["name"] == "tidings-2", 15)
            async with asyncio.timeout(10):
                await member.leave()
        finally:
            await member.stop()
        for peer in (first, second):
            await peer.wait_for(lambda e: e["event"] == "leave" and e["name"] == "tidings-2", 10)
            assert not peer.failed("tidings-2")  # a leave, not a failure


async def test_go_leave_is_a_leave_event_in_tidings() -> None:
    async with cluster() as (first, second):
        events: list[MemberEvent] = []
        member = GossipMember("tidings-3", ("127.0.0.1", free_port()), on_event=events.append)
        await member.start()
        try:
            await member.join([("127.0.0.1", first.port)])
            await until(lambda: "go-2" in alive_names(member), 15)
            assert second.proc.stdin is not None
            second.proc.stdin.write(b"leave\n")
            await second.proc.stdin.drain()
            await until(
                lambda: any(
                    e.kind is MemberEventKind.LEAVE and e.member.name == "go-2" for e in events
                ),
                15,
            )
        finally:
            await member.stop()


async def test_foreign_label_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    async with cluster(label="blue") as (first, _):
        member = GossipMember("red-1", ("127.0.0.1", free_port()), label="red")
        await member.start()
        try:
            with (
                caplog.at_level(logging.WARNING, logger="tidings.cluster.gossip"),
                pytest.raises(GossipError),
            ):
                await member.join([("127.0.0.1", first.port)])
            assert alive_names(member) == {"red-1"}
        finally:
            await member.stop()
        assert not any(e.get("name") == "red-1" and e["event"] == "join" for e in first.events)


async def test_wrong_key_is_refused_with_a_clear_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with cluster(KEY) as (first, _):
        member = GossipMember("intruder", ("127.0.0.1", free_port()), keyring=Keyring([b"x" * 32]))
        await member.start()
        try:
            with (
                caplog.at_level(logging.WARNING, logger="tidings.cluster.gossip"),
                pytest.raises(GossipError),
            ):
                await member.join([("127.0.0.1", first.port)])
            assert "could decrypt" in caplog.text
            assert alive_names(member) == {"intruder"}
        finally:
            await member.stop()
        assert not any(e.get("name") == "intruder" for e in first.events)
