"""The supervisor: restart delays, what each worker is told, and failures before any worker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tidings.config import build
from tidings.workers.supervisor import FIRST_BACKOFF, MAX_BACKOFF, Supervisor, restart_delay


def test_restart_delays_double_up_to_a_ceiling() -> None:
    delays = [restart_delay(n) for n in range(1, 12)]
    assert delays[:4] == [FIRST_BACKOFF, FIRST_BACKOFF * 2, FIRST_BACKOFF * 4, FIRST_BACKOFF * 8]
    assert delays[-1] == MAX_BACKOFF
    assert delays == sorted(delays)


def test_workers_are_named_nodes_of_the_private_redis(tmp_path: Path) -> None:
    supervisor = Supervisor(build({"workers": 3, "name": "box", "data_dir": str(tmp_path)}))
    assert [slot.name for slot in supervisor.slots] == ["box-w1", "box-w2", "box-w3"]
    assert supervisor.redis is not None and supervisor.redis.durable  # personal channels
    supervisor.client_port, supervisor.api_port = 8123, 9123
    told = supervisor.worker_settings(supervisor.slots[1])
    assert (told.name, told.workers, told.engine) == ("box-w2", 1, "redis")
    assert told.redis_address == [supervisor.redis.url]
    assert (told.port, told.api_port) == (8123, 9123)


def test_without_durable_channels_the_private_redis_keeps_nothing(tmp_path: Path) -> None:
    for extra in ({"personal_channel_durable": False}, {"durable_allow_volatile": True}):
        supervisor = Supervisor(build({"workers": 2, "data_dir": str(tmp_path), **extra}))
        assert supervisor.redis is not None and not supervisor.redis.durable


def test_a_configured_redis_engine_is_used_as_it_is(tmp_path: Path) -> None:
    url = "redis://127.0.0.1:6379/0"
    supervisor = Supervisor(
        build({"workers": 2, "engine": "redis", "redis_address": [url], "data_dir": str(tmp_path)})
    )
    assert supervisor.redis is None
    told = supervisor.worker_settings(supervisor.slots[0])
    assert told.engine == "redis" and told.redis_address == [url]


def test_a_port_in_use_fails_before_any_worker_starts(tmp_path: Path) -> None:
    engine = ["--engine", "redis", "--redis-address", "redis://127.0.0.1:1"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = ["--address", "127.0.0.1", "--port", str(taken.getsockname()[1])]
        ports += ["--api-port", "0", "--api-insecure"]
        done = subprocess.run(
            [sys.executable, "-m", "tidings", "serve", "--workers", "2", *engine, *ports],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")},
        )
    assert done.returncode == 1, done.stderr
    assert "tidings: cannot listen" in done.stderr
    assert "worker" not in done.stderr


#: What a supervisor has no use for: the server, the engines, the bench harness, HTTP, JWT.
NOT_FOR_THE_SUPERVISOR = (
    "tidings.server",
    "tidings.core.node",
    "tidings.bench",
    "aiohttp",
    "redis",
    "jwt",
)


def test_the_serve_command_and_the_supervisor_import_no_server() -> None:
    # `tidings serve --workers N` stays alive as the supervisor: what it imports it holds.
    probe = (
        "import sys\n"
        "from tidings.cli import build_parser\n"
        "build_parser('serve').parse_args(['serve', '--workers', '2'])\n"
        "import tidings.workers.supervisor\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    loaded = [
        m for m in out if any(m == n or m.startswith(n + ".") for n in NOT_FOR_THE_SUPERVISOR)
    ]
    assert "tidings.workers.supervisor" in out
    assert loaded == []
