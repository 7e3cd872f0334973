"""A tidings gossip member as a process, speaking the same JSON lines as the Go peer.

    python tests/peers/gossip_member.py -name n1 -bind 10.0.0.1 -port 7946 [-join host:port,...]

Prints {"event": "ready"}, then {"event": "join"|"update"|"suspect"|"leave", "name": ...}
for membership events ("leave" covers dead and left, as memberlist's NotifyLeave; the
"how" field says which). SIGTERM leaves gracefully; SIGKILL is a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

from tidings.cluster.gossip import GossipMember
from tidings.protocol.memberlist.member import MemberEvent, MemberEventKind


def emit(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def on_event(event: MemberEvent) -> None:
    kind = event.kind
    name = event.member.name
    if kind in (MemberEventKind.DEAD, MemberEventKind.LEAVE):
        emit({"event": "leave", "name": name, "how": kind.value})
    else:
        emit({"event": kind.value, "name": name})


async def main(args: argparse.Namespace) -> None:
    member = GossipMember(args.name, (args.bind, args.port), on_event=on_event)
    await member.start()
    if args.join:
        seeds = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in args.join.split(","))]
        for _ in range(50):
            with contextlib.suppress(Exception):
                await member.join(seeds)
                break
            await asyncio.sleep(0.2)
    emit({"event": "ready", "name": args.name, "port": member.port})
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            await member.leave()
    await member.stop()
    emit({"event": "left", "name": args.name})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="tidings gossip member")
    parser.add_argument("-name", required=True)
    parser.add_argument("-bind", default="127.0.0.1")
    parser.add_argument("-port", type=int, default=7946)
    parser.add_argument("-join", default="")
    asyncio.run(main(parser.parse_args()))
