"""Centrifugo v6 as a bench target: a generated config, the memory or the Redis engine.

`tidings bench <scenario> --target centrifugo` (or `centrifugo-redis`) and
`benchmarks/compare.py` start it here. The config mirrors what tidings is given
for load: HS256 connect tokens, clients may subscribe to channels without a
namespace, every connection is subscribed server-side to its personal channel
`#<user>` (as tidings does), the bench namespaces with their history, no rate
or connection limits, and the HTTP API with its key. Usage statistics are off
(loopback only). The Redis engine gets a private `redis-server` on a free port
in the target's temporary directory, measured and stopped with Centrifugo.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
from pathlib import Path
from typing import Any

from tidings.bench import programs
from tidings.bench.target import (
    BENCH_API_KEY,
    HOST,
    Target,
    free_port,
    launch,
    start_redis,
)

#: What scripts/build-bench-peers.sh installs.
VERSION = "v6.9.1"
#: `--target` names -> engine.
TARGETS = {"centrifugo": "memory", "centrifugo-redis": "redis"}


def _namespace(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """A tidings namespace as Centrifugo sees it: history kept, never on disk by Centrifugo."""
    out: dict[str, Any] = {"name": name, "allow_subscribe_for_client": True}
    if options.get("history_size"):
        out["history_size"] = int(options["history_size"])
        out["history_ttl"] = f"{int(options.get('history_ttl', 300))}s"
    return out


def config(
    *,
    port: int,
    secret: str,
    api_key: str,
    engine: str = "memory",
    redis_url: str = "",
    namespaces: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The Centrifugo v6 JSON config for a load run on 127.0.0.1:`port` (client + API)."""
    engine_config: dict[str, Any] = {"type": engine}
    if engine == "redis":
        engine_config["redis"] = {"address": [redis_url]}
    return {
        "http_server": {"address": HOST, "port": port},
        "log": {"level": "error"},
        "engine": engine_config,
        "client": {
            "token": {"hmac_secret_key": secret},
            "subscribe_to_user_personal_channel": {"enabled": True},
            "connection_limit": 0,
            "user_connection_limit": 0,
            "connection_rate_limit": 0,
        },
        "channel": {
            "without_namespace": {"allow_subscribe_for_client": True},
            "namespaces": [_namespace(n, o) for n, o in (namespaces or {}).items()],
        },
        "http_api": {"key": api_key},
        "health": {"enabled": True},
        "usage_stats": {"disabled": True},
    }


async def start(
    engine: str = "memory",
    namespaces: dict[str, dict[str, Any]] | None = None,
    cpus: frozenset[int] = frozenset(),
    redis_url: str = "",
) -> Target:
    """Centrifugo (built by scripts/build-bench-peers.sh) with `engine`, pinned to `cpus`.

    The Redis engine uses `redis_url` if given (a Redis shared with other targets,
    not measured with Centrifugo), else a private `redis-server` measured with it.
    """
    if engine not in TARGETS.values():
        raise ValueError(f"unknown Centrifugo engine {engine!r}")
    binary = programs.program("centrifugo")
    workdir = Path(tempfile.mkdtemp(prefix=f"tidings-bench-centrifugo-{engine}-"))
    companions: list[asyncio.subprocess.Process] = []
    if engine == "redis" and not redis_url:
        redis, redis_port = await start_redis(workdir, cpus)
        companions.append(redis)
        redis_url = f"redis://{HOST}:{redis_port}"
    port = free_port()
    secret = secrets.token_urlsafe(32)
    path = workdir / "config.json"
    path.write_text(
        json.dumps(
            config(
                port=port,
                secret=secret,
                api_key=BENCH_API_KEY,
                engine=engine,
                redis_url=redis_url,
                namespaces=namespaces,
            ),
            indent=2,
        )
    )
    name = "centrifugo" if engine == "memory" else "centrifugo-redis"
    target = await launch(
        name,
        [str(binary), "--config", str(path)],
        workdir,
        ws_port=port,
        api_port=port,
        secret=secret,
        cpus=cpus,
        companions=companions,
    )
    target.extra["version"] = VERSION
    target.extra["engine"] = engine
    return target
