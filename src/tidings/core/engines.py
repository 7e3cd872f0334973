"""The backends a node runs on, chosen by `engine`: memory (one node) or Redis (a cluster)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tidings.broker.base import Broker
from tidings.broker.memory import MemoryBroker, MemoryBrokerHub
from tidings.broker.redis import RedisBroker
from tidings.core.channels import ChannelRules
from tidings.engine.redis import RedisEngine, RedisSettings
from tidings.errors import ConfigError, ReplyError
from tidings.presence.base import PresenceStore
from tidings.presence.memory import MemoryPresenceStore
from tidings.presence.redis import PRESENCE_TTL, RedisPresenceStore
from tidings.register.base import UserRegister
from tidings.register.memory import MemoryUserRegister
from tidings.register.redis import RedisUserRegister
from tidings.settings import Settings, durable_wanted
from tidings.store.base import HistoryStore, StoreWriteError
from tidings.store.memory import MemoryHistoryStore
from tidings.store.router import StoreRouter
from tidings.store.sqlite import SqliteHistoryStore


@dataclass
class Backends:
    broker: Broker
    presence: PresenceStore
    register: UserRegister
    engine: RedisEngine | None = None


def local_history(settings: Settings, rules: ChannelRules) -> StoreRouter:
    """One node's history: memory for ordinary channels, SQLite under data_dir for durable ones."""

    def is_durable(name: str) -> bool:
        try:
            return rules.resolve(name).options.durable
        except ReplyError:
            return False

    durable: HistoryStore | None = None
    if durable_wanted(settings):
        path = Path(settings.data_dir) / "streams.sqlite3"
        try:
            durable = SqliteHistoryStore(
                path,
                policy_of=lambda name: rules.resolve(name).options.fsync,
                batch_window=settings.durable_batch_window,
                max_bytes=settings.durable_max_bytes,
            )
        except (StoreWriteError, OSError) as exc:
            raise ConfigError("data_dir", str(exc)) from None
    memory = MemoryHistoryStore(max_streams=settings.history_max_streams)
    return StoreRouter(memory, durable, is_durable)


def memory_backends(node_id: str, history: HistoryStore) -> Backends:
    return Backends(
        MemoryBroker(MemoryBrokerHub(history=history), node_id=node_id),
        MemoryPresenceStore(),
        MemoryUserRegister(),
    )


def redis_settings(settings: Settings) -> RedisSettings:
    return RedisSettings(
        addresses=tuple(settings.redis_address),
        cluster_addresses=tuple(settings.redis_cluster_address),
        prefix=settings.redis_prefix,
        connect_timeout=settings.redis_connect_timeout,
        command_timeout=settings.redis_command_timeout,
    )


def redis_backends(node_id: str, settings: Settings) -> Backends:
    try:
        engine = RedisEngine(redis_settings(settings))
        broker = RedisBroker(
            engine,
            node_id=node_id,
            wait_replicas=settings.durable_replicas,
            # WAIT must answer inside the command timeout (the script's own reply comes first)
            wait_timeout=settings.redis_command_timeout / 2,
        )
    except ValueError as exc:
        raise ConfigError("redis_address", str(exc)) from None
    return Backends(
        broker,
        RedisPresenceStore(engine, entry_ttl=PRESENCE_TTL, node_id=node_id),
        RedisUserRegister(engine),
        engine,
    )
