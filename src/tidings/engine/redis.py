"""The Redis engine: the connections every Redis backend of a node shares.

One of three topologies:

- one server (`addresses=["redis://..."]`);
- several independent servers (`addresses` with several URLs): each channel
  lives on one of them, chosen by jump consistent hashing of its name, so
  adding a shard moves only about 1/n of the channels;
- a Redis Cluster (`cluster_addresses`): the cluster routes keys by slot;
  every key of a channel carries the hash tag of the channel (see
  `channel_tag`) so one Lua script can touch all of them, and PUB/SUB uses
  sharded channels (SSUBSCRIBE/SPUBLISH, Redis >= 7) on the same slot.

Errors: anything that means "Redis is not there" (refused, reset, timed out,
cluster down) is raised as `EngineUnavailable`, a `StoreWriteError`, so a
publish fails fast with error 100 and never succeeds silently. The clients
never retry on their own: a retried publish could be applied twice.

A cluster's topology changes (a failover, a slot migration): the engine
keeps redis-py's slot table and refreshes it (`refresh_topology`, at most
every `TOPOLOGY_REFRESH` seconds unless asked to wait) when a server is
unreachable or answers MOVED/ASK/TRYAGAIN. A MOVED reply means the command
did not run, so that one is sent again, once, to the new owner; an ASK or
TRYAGAIN (a slot half way through a migration) and an unreachable primary
(before its replica took over) are `EngineUnavailable` until it settles.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis import exceptions as redis_errors
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tidings.engine.redis_batch import ScriptBatcher
from tidings.store.base import StoreWriteError

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Seconds between topology refreshes that errors trigger in the background.
TOPOLOGY_REFRESH = 0.25

#: Errors that mean the engine cannot be reached (rather than refusing a command).
UNREACHABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    redis_errors.ClusterError,
    redis_errors.RedisClusterException,
    redis_errors.BusyLoadingError,
    TimeoutError,
    OSError,
)


class LuaScript:
    """A Lua script run by EVALSHA (the batcher loads it on each server first)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class EngineUnavailable(StoreWriteError):
    """Redis did not answer (down, unreachable, or slower than the command timeout)."""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where Redis is and how long to wait for it."""

    #: `redis://` / `rediss://` / `unix://` URLs; several = channels sharded across them.
    addresses: Sequence[str] = ()
    #: Seed URLs of a Redis Cluster (instead of `addresses`).
    cluster_addresses: Sequence[str] = ()
    #: Prepended to every key and PUB/SUB channel (several clusters on one Redis).
    prefix: str = "tidings"
    connect_timeout: float = 1.0
    command_timeout: float = 1.0


def channel_tag(channel: str) -> str:
    """The `{...}` hash tag of a channel's keys: every key of one channel is in one slot.

    A name with braces would cut the tag short (Redis hashes up to the first
    `}`), so such names are tagged by a digest instead.
    """
    if "{" in channel or "}" in channel or not channel:
        return "{#" + hashlib.blake2b(channel.encode(), digest_size=8).hexdigest() + "}"
    return "{" + channel + "}"


def jump_hash(key: int, buckets: int) -> int:
    """Jump consistent hash (Lamping and Veach, 2014): a bucket in [0, buckets)."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return b


def shard_of(name: str, shards: int) -> int:
    """Which of `shards` servers owns `name` (stable across processes)."""
    if shards <= 1:
        return 0
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return jump_hash(int.from_bytes(digest, "big"), shards)


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


def _describe(address: str) -> str:
    parts = urlsplit(address)
    return parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"


class RedisEngine:
    """The Redis clients of one node, and which one serves a channel.

    `client_for(name)` gives the client for a channel's keys (a shard, or the
    cluster client which routes by slot). `call` runs a command and turns
    engine failures into `EngineUnavailable`.
    """

    def __init__(self, settings: RedisSettings) -> None:
        if bool(settings.addresses) == bool(settings.cluster_addresses):
            raise ValueError("give either Redis addresses or Redis Cluster addresses")
        if "{" in settings.prefix or "}" in settings.prefix:
            raise ValueError("the Redis key prefix cannot contain braces")
        self.settings = settings
        self.prefix = settings.prefix
        options: dict[str, Any] = {
            "socket_timeout": settings.command_timeout,
            "socket_connect_timeout": settings.connect_timeout,
            "retry": _no_retry(),
            # RESP2: PUB/SUB messages are plain replies (no push-handler detour per message)
            "protocol": 2,
        }
        self.cluster: RedisCluster | None = None
        self.shards: list[Redis] = []
        if settings.cluster_addresses:
            nodes = [
                ClusterNode(urlsplit(a).hostname or "127.0.0.1", urlsplit(a).port or 6379)
                for a in settings.cluster_addresses
            ]
            self.cluster = RedisCluster(startup_nodes=nodes, **options)
            self.names = [_describe(a) for a in settings.cluster_addresses]
        else:
            self.shards = [Redis.from_url(a, **options) for a in settings.addresses]
            self.names = [_describe(a) for a in settings.addresses]
        self._options = options
        self._nodes: dict[tuple[str, int], Redis] = {}
        self.batcher = ScriptBatcher(self)
        self._refreshing: asyncio.Future[None] | None = None
        self._refreshed_at = 0.0

    async def run(self, name: str, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        """Run `script` on the server holding `name`'s keys, in this turn's pipeline."""
        return await self.batcher.run(name, script, keys, args)

    @property
    def sharded_pubsub(self) -> bool:
        """Whether PUB/SUB is sharded (SSUBSCRIBE/SPUBLISH): in a Redis Cluster."""
        return self.cluster is not None

    def shard_index(self, name: str) -> int:
        return shard_of(name, len(self.shards))

    def client_for(self, name: str) -> Redis | RedisCluster:
        """The client that holds `name`'s keys."""
        if self.cluster is not None:
            return self.cluster
        return self.shards[self.shard_index(name)]

    def where(self, name: str) -> str:
        """The address serving `name`, for error messages."""
        if self.cluster is not None:
            return "the Redis Cluster at " + ", ".join(self.names)
        return "Redis at " + self.names[self.shard_index(name)]

    async def call(self, name: str, do: Callable[[], Awaitable[T]]) -> T:
        """Run `do` (a command for `name`'s keys); engine failures become EngineUnavailable."""
        try:
            try:
                return await do()
            except redis_errors.MovedError:
                if self.cluster is None:
                    raise
                # Not run: the slot has a new owner. Learn it and send it there, once.
                await self.refresh_topology()
                return await do()
        except UNREACHABLE as exc:
            self._topology_suspect()
            raise EngineUnavailable(f"{self.where(name)} is unavailable: {exc}") from None
        except (redis_errors.AskError, redis_errors.TryAgainError) as exc:
            self._topology_suspect()
            raise EngineUnavailable(
                f"{self.where(name)} is moving the slot of {name!r}: {exc}"
            ) from None
        except redis_errors.RedisError as exc:
            raise StoreWriteError(f"{self.where(name)} refused: {exc}") from None

    async def refresh_topology(self) -> None:
        """Read the cluster's slot table again (callers at the same time share one read).

        Raises EngineUnavailable while no reachable node knows a full table.
        """
        if self.cluster is None:
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())
        await asyncio.shield(self._refreshing)

    async def _refresh(self) -> None:
        assert self.cluster is not None
        self._refreshed_at = time.monotonic()
        try:
            await self.cluster.nodes_manager.initialize()
        except (*UNREACHABLE, redis_errors.RedisError) as exc:
            raise EngineUnavailable(f"{self.where('')} has no settled topology: {exc}") from None

    def _topology_suspect(self) -> None:
        """Refresh the slot table in the background (not more often than TOPOLOGY_REFRESH)."""
        if self.cluster is None or time.monotonic() - self._refreshed_at < TOPOLOGY_REFRESH:
            return
        if self._refreshing is not None and not self._refreshing.done():
            return
        self._refreshing = asyncio.ensure_future(self._refresh())
        self._refreshing.add_done_callback(_ignore_result)

    async def check(self) -> None:
        """Fail fast: raise EngineUnavailable unless every server answers PING."""
        if self.cluster is not None:
            await self.call("", self.cluster.initialize)
            await self.call("", self.cluster.ping)
            return
        for index, shard in enumerate(self.shards):
            try:
                await shard.ping()
            except UNREACHABLE as exc:
                raise EngineUnavailable(
                    f"Redis at {self.names[index]} is unavailable: {exc}"
                ) from None

    async def primaries(self) -> list[Redis]:
        """A client per primary: every shard, or every primary of the cluster."""
        if self.cluster is None:
            return list(self.shards)
        await self.call("", self.cluster.initialize)
        return [self.node_client(n.host, int(n.port)) for n in self.cluster.get_primaries()]

    async def config(self, pattern: str) -> list[dict[str, str]]:
        """`CONFIG GET pattern` of every primary of the engine."""
        found = []
        for client in await self.primaries():
            found.append(await self.call("", partial(_config_get, client, pattern)))
        return found

    def node_client(self, host: str, port: int) -> Redis:
        """A plain client of one cluster node (kept: one connection pool per node)."""
        client = self._nodes.get((host, port))
        if client is None:
            client = self._nodes[(host, port)] = Redis(host=host, port=port, **self._options)
        return client

    async def primary_for(self, name: str) -> Redis:
        """A plain client of the server whose slot (or shard) holds `name`'s keys."""
        if self.cluster is None:
            return self.shards[self.shard_index(name)]
        if not self.cluster.get_primaries():
            await self.call(name, self.cluster.initialize)
        node = self.cluster.get_node_from_key(channel_tag(name))
        if node is None:
            raise EngineUnavailable(f"no Redis Cluster node serves the slot of {name!r}")
        return self.node_client(node.host, int(node.port))

    async def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
            with contextlib.suppress(BaseException):
                await self._refreshing
        if self.cluster is not None:
            await self.cluster.aclose()
        for client in (*self.shards, *self._nodes.values()):
            await client.aclose()


def _ignore_result(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.debug("background topology refresh: %s", future.exception())


async def _config_get(client: Redis, pattern: str) -> dict[str, str]:
    reply = await client.config_get(pattern)
    return {_text(k): _text(v) for k, v in reply.items()}


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
