"""One worker process: `python -m tidings.workers.worker --name NAME --status-fd FD`.

The supervisor starts it with its settings as one JSON line on stdin (secrets
stay out of argv and the environment) and keeps stdin open: end of file means
the supervisor is gone (`lifeline`). The worker binds both ports with
SO_REUSEPORT, writes `ready` to the status pipe once it listens, and serves
until SIGTERM, when it drains like a single `tidings serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

import msgspec

from tidings import logs
from tidings.config import Settings
from tidings.errors import ConfigError
from tidings.workers.lifeline import watch_parent

#: What the worker writes to its status pipe once both ports listen.
READY = b"ready\n"


def encode_settings(settings: Settings) -> bytes:
    """The settings as the one line a worker reads from stdin."""
    return msgspec.json.encode(settings) + b"\n"


def decode_settings(line: bytes) -> Settings:
    return msgspec.json.decode(line, type=Settings)


class WorkerName(logging.Filter):
    """Names the worker in every record (`tidings.server` becomes `w1 tidings.server`)."""

    def __init__(self, worker: str) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.worker):
            record.name = f"{self.worker} {record.name}"
        return True


async def serve(settings: Settings, status_fd: int) -> None:
    from tidings.server import Server, run

    server = Server(settings, reuse_port=True)
    stop = asyncio.Event()
    watch_parent(sys.stdin.fileno(), stop.set)

    def ready(_ports: object) -> None:
        os.write(status_fd, READY)

    await run(server, banner=False, stop=stop, ready=ready)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidings-worker")
    parser.add_argument("--name", required=True, help="node name (for ps; the settings have it)")
    parser.add_argument("--status-fd", type=int, required=True, help="pipe to write 'ready' to")
    args = parser.parse_args(argv)
    try:
        settings = decode_settings(sys.stdin.buffer.readline())
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        print(f"tidings worker {args.name}: bad settings on stdin: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    for handler in logging.getLogger().handlers:
        handler.addFilter(WorkerName(args.name))
    try:
        import uvloop

        uvloop.run(serve(settings, args.status_fd))
    except ConfigError as exc:
        print(f"tidings worker {args.name}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tidings worker {args.name}: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
