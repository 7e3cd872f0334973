"""A tidings gossip member in a cluster of real HashiCorp Serf agents (Debian `serf`).

`serf members` lists the tidings member as alive with its tags, tidings lists every
Serf node, each side detects the other's death, a `serf event` reaches tidings once,
and with encryption the same holds with a shared key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.polling import until
from tidings.cluster.gossip import GossipMember
from tidings.protocol.memberlist.config import GossipConfig
from tidings.protocol.memberlist.keyring import Keyring
from tidings.protocol.memberlist.member import MemberEvent, MemberEventKind
from tidings.protocol.memberlist.messages import SERF_VSN, NodeStateType
from tidings.protocol.serf.messages import UserEvent
from tidings.protocol.serf.participant import SerfParticipant
from tidings.protocol.serf.tags import decode_tags, encode_tags

ROOT = Path(__file__).resolve().parents[2]
KEY = b"serf-test-key-16"
DETECTION_LIMIT = 30.0


@pytest.fixture(scope="module", autouse=True)
def serf_installed() -> None:
    if shutil.which("serf") is None:
        subprocess.run(["sh", str(ROOT / "scripts/setup-test-deps.sh")], check=True, timeout=900)
    assert shutil.which("serf"), "scripts/setup-test-deps.sh installs Debian's serf"


class SerfAgent:
    def __init__(self, name: str, port: int, rpc: int, proc: asyncio.subprocess.Process) -> None:
        self.name, self.port, self.rpc, self.proc = name, port, rpc, proc

    @classmethod
    async def start(cls, name: str, join: int | None = None, key: bytes | None = None) -> SerfAgent:
        port, rpc = free_port(), free_port()
        args = ["serf", "agent", "-node", name, "-bind", f"127.0.0.1:{port}"]
        args += ["-rpc-addr", f"127.0.0.1:{rpc}", "-tag", "kind=serf"]
        if join:
            args += ["-join", f"127.0.0.1:{join}"]
        if key:
            args += ["-encrypt", base64.b64encode(key).decode()]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        agent = cls(name, port, rpc, proc)
        async with asyncio.timeout(15):
            while not await agent.members_or_none():  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        return agent

    async def command(self, command: str, *args: str) -> str:
        """`serf COMMAND -rpc-addr=… ARGS` (flags before positional arguments)."""
        argv = ["serf", command, f"-rpc-addr=127.0.0.1:{self.rpc}", *args]
        done = await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, timeout=10
        )
        if done.returncode:
            raise RuntimeError(f"serf {command} failed: {done.stderr.strip()}")
        return done.stdout

    async def members_or_none(self) -> dict[str, dict[str, object]] | None:
        try:
            listing = json.loads(await self.command("members", "-format=json"))
        except (RuntimeError, ValueError):
            return None
        return {m["name"]: m for m in listing["members"]}

    async def status_of(self, name: str) -> object:
        members = await self.members_or_none() or {}
        return members.get(name, {}).get("status")

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def close(self) -> None:
        self.kill()
        await self.proc.wait()


@contextlib.asynccontextmanager
async def serf_cluster(key: bytes | None) -> AsyncIterator[tuple[SerfAgent, SerfAgent]]:
    first = await SerfAgent.start("serf-1", key=key)
    second = await SerfAgent.start("serf-2", join=first.port, key=key)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


async def until_status(agent: SerfAgent, name: str, status: str, limit: float) -> None:
    async with asyncio.timeout(limit):
        while await agent.status_of(name) != status:  # noqa: ASYNC110
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
async def test_tidings_in_a_serf_cluster(key: bytes | None) -> None:
    async with serf_cluster(key) as (first, second):
        events: list[MemberEvent] = []
        user_events: list[UserEvent] = []
        serf = SerfParticipant("tidings-1")

        def on_user_message(payload: bytes) -> None:
            if (event := serf.receive(payload)) is not None:
                user_events.append(event)

        member = GossipMember(
            "tidings-1",
            ("127.0.0.1", free_port()),
            meta=encode_tags({"role": "tidings", "region": "eu"}),
            config=GossipConfig(vsn=SERF_VSN),
            keyring=Keyring([key]) if key else None,
            on_event=events.append,
            on_user_message=on_user_message,
        )
        await member.start()
        try:
            await member.join([("127.0.0.1", first.port)])
            await until_status(second, "tidings-1", "alive", 15)
            listed = (await second.members_or_none() or {})["tidings-1"]
            assert listed["tags"] == {"role": "tidings", "region": "eu"}
            await until(
                lambda: (
                    {"serf-1", "serf-2"}
                    <= {m.name for m in member.members() if m.state is NodeStateType.ALIVE}
                ),
                15,
            )
            serf_view = {m.name: m for m in member.members()}
            assert decode_tags(serf_view["serf-2"].meta) == {"kind": "serf"}

            await first.command("event", "deploy", "v42")
            await until(lambda: bool(user_events), 15)
            await asyncio.sleep(1)  # retransmissions arrive, and are dropped
            assert [(e.name, e.payload) for e in user_events] == [("deploy", b"v42")]

            second.kill()
            await until(
                lambda: any(
                    e.kind is MemberEventKind.DEAD and e.member.name == "serf-2" for e in events
                ),
                DETECTION_LIMIT,
            )
        finally:
            await member.stop()
        await until_status(first, "tidings-1", "failed", DETECTION_LIMIT)


async def test_graceful_leave_shows_as_left_in_serf() -> None:
    async with serf_cluster(None) as (first, _):
        member = GossipMember(
            "tidings-2", ("127.0.0.1", free_port()), config=GossipConfig(vsn=SERF_VSN)
        )
        await member.start()
        try:
            await member.join([("127.0.0.1", first.port)])
            await until_status(first, "tidings-2", "alive", 15)
            # Serf counts a leave as graceful when its leave intent came first.
            member.broadcast(SerfParticipant("tidings-2").leave_intent())
            await until_status(first, "tidings-2", "leaving", 10)
            async with asyncio.timeout(10):
                await member.leave()
        finally:
            await member.stop()
        await until_status(first, "tidings-2", "left", 15)
