"""`tidings serve` with gossip as a netns lab peer: runs the node and turns its JSON log
into the lab's event lines (the same as tests/peers/gossip_member.py and the Go peer).

    python tests/peers/tidings_serve_peer.py -name n1 -bind 10.0.0.1 -port 7946 [-join host:port]

Prints {"event": "ready"}, then {"event": "join"|"suspect"|"leave", "name": ...} from the
node's "gossip: member NAME KIND (ADDRESS)" log lines ("leave" covers dead and left).
The node dies with this process (SIGKILL included: PR_SET_PDEATHSIG); SIGTERM is passed
on (a graceful leave).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
MEMBER_LINE = re.compile(r"^gossip: member (\S+) (join|suspect|dead|leave) ")


def emit(record: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main(args: argparse.Namespace) -> int:
    argv = [sys.executable, "-m", "tidings", "serve", "--name", args.name]
    argv += ["--address", args.bind, "--port", "8000", "--api-port", "9000"]
    argv += ["--api-insecure", "--log-format", "json", "--no-personal-channel"]
    argv += ["--gossip-bind", f"{args.bind}:{args.port}", "--data-dir", f"/tmp/{args.name}"]
    if args.join:
        argv += ["--gossip-join", args.join]
    child = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - this process has no threads
    )
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("tidings ready"):
            emit({"event": "ready", "name": args.name})
            emit({"event": "join", "name": args.name})
            continue
        try:
            message = str(json.loads(line).get("message", ""))
        except (ValueError, AttributeError):
            continue
        match = MEMBER_LINE.match(message)
        if match:
            name, kind = match.groups()
            if kind in ("dead", "leave"):
                emit({"event": "leave", "name": name, "how": kind})
            else:
                emit({"event": kind, "name": name})
    return child.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="tidings serve as a netns lab peer")
    parser.add_argument("-name", required=True)
    parser.add_argument("-bind", required=True)
    parser.add_argument("-port", type=int, default=7946)
    parser.add_argument("-join", default="")
    sys.exit(main(parser.parse_args()))
