"""Expiring entries in Redis: what presence and the user register are made of.

A set of entries under a name (a channel for presence, a user for the
register), each `member -> (value, group)` with an expiry time and the node
that owns it. A node refreshes the entries it added every `ttl / 3`
seconds; when a node dies, its entries stop being refreshed and vanish from
reads within `ttl`.

Sooner than that, in practice: the other nodes notice the silence of its
heartbeats (`node_heartbeat_timeout`) and call `node_gone`; from then on
every read of theirs drops the entries that node owns, in the same script
(so a dead node stops counting within the heartbeat timeout, and nothing
per entry is written while it is alive). Departed nodes are remembered for
`ttl` seconds, after which their entries have expired anyway. A node that
was only cut off and is heard again (`node_back`) has its entries back as
soon as it refreshes them (within `ttl / 3`).

Keys of name `n` (prefix `P`, family `F`, `{t}` = `channel_tag(n)`):

    P.F{t}.v   hash  member -> value
    P.F{t}.g   hash  member -> group (presence: user id; register: node id)
    P.F{t}.x   zset  member -> expiry time (ms, from the caller's clock)
    P.F{t}.o   hash  member -> owner (the node id that added it)

Every read first drops expired members, in the same script. The keys
themselves expire `ttl` after the last add, so a name nobody refreshes
leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from tidings.engine.redis import LuaScript, RedisEngine, channel_tag

log = logging.getLogger(__name__)

#: Most departed nodes remembered (a flood of node ids cannot grow memory or reads).
MAX_DEPARTED = 1000

#: Entries re-added at a time by `refresh` (one engine pipeline's worth).
REFRESH_CHUNK = 1000

# KEYS: values, groups, expiry, owners. ARGV: now ms, then the departed owners.
_PURGE = """
local function drop(member)
  redis.call('hdel', KEYS[1], member)
  redis.call('hdel', KEYS[2], member)
  redis.call('zrem', KEYS[3], member)
  redis.call('hdel', KEYS[4], member)
end
local function purge()
  local gone = redis.call('zrangebyscore', KEYS[3], '-inf', ARGV[1])
  for _, member in ipairs(gone) do drop(member) end
  if #ARGV > 1 then
    local departed = {}
    for i = 2, #ARGV do departed[ARGV[i]] = true end
    local owners = redis.call('hgetall', KEYS[4])
    for i = 1, #owners, 2 do
      if departed[owners[i + 1]] then drop(owners[i]) end
    end
  end
end
"""

# KEYS: values, groups, expiry, owners. ARGV: member, value, group, expires at ms,
# key ttl ms, owner.
ADD = LuaScript("""
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
redis.call('hset', KEYS[2], ARGV[1], ARGV[3])
redis.call('zadd', KEYS[3], ARGV[4], ARGV[1])
redis.call('hset', KEYS[4], ARGV[1], ARGV[6])
for i = 1, 4 do redis.call('pexpire', KEYS[i], ARGV[5]) end
return 1
""")

# KEYS: values, groups, expiry, owners. ARGV: member.
REMOVE = LuaScript("""
redis.call('hdel', KEYS[1], ARGV[1])
redis.call('hdel', KEYS[2], ARGV[1])
redis.call('zrem', KEYS[3], ARGV[1])
redis.call('hdel', KEYS[4], ARGV[1])
return 1
""")

# KEYS: values, groups, expiry, owners. ARGV: now ms, departed owners.
# Returns {member, value, group, ...}.
GET = LuaScript(
    _PURGE
    + """
purge()
local values = redis.call('hgetall', KEYS[1])
local reply = {}
for i = 1, #values, 2 do
  reply[#reply + 1] = values[i]
  reply[#reply + 1] = values[i + 1]
  reply[#reply + 1] = redis.call('hget', KEYS[2], values[i]) or ''
end
return reply
"""
)

# KEYS: values, groups, expiry, owners. ARGV: now ms, departed owners.
# Returns {members, distinct groups}.
COUNT = LuaScript(
    _PURGE
    + """
purge()
local seen, distinct = {}, 0
local groups = redis.call('hvals', KEYS[2])
for _, group in ipairs(groups) do
  if not seen[group] then seen[group] = true; distinct = distinct + 1 end
end
return {#groups, distinct}
"""
)


class ExpiringEntries:
    """Entries of one family (`presence`, `user`) on a `RedisEngine`.

    Entries this instance added are remembered (bounded by what the node
    holds) and re-added every `ttl / 3` seconds by a task that starts with
    the first add and stops at `close`.
    """

    def __init__(
        self,
        engine: RedisEngine,
        family: str,
        ttl: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.family = family
        self.ttl = ttl
        self.clock = clock
        #: name -> member -> (value, group, owner): what this node must keep alive.
        self.local: dict[str, dict[str, tuple[bytes, str, str]]] = {}
        #: Nodes found gone (node id -> when, monotonic): reads drop what they own.
        self.departed: dict[str, float] = {}
        self._refresher: asyncio.Task[None] | None = None

    def keys(self, name: str) -> list[str]:
        base = f"{self.engine.prefix}.{self.family}{channel_tag(name)}."
        return [base + "v", base + "g", base + "x", base + "o"]

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def _run(self, name: str, script: LuaScript, args: list[Any]) -> Any:
        keys = self.keys(name)
        return await self.engine.call(name, lambda: self.engine.run(name, script, keys, args))

    async def add(self, name: str, member: str, value: bytes, group: str, owner: str) -> None:
        """Add (or replace) `member`, owned by the node `owner` (this instance's node)."""
        self.local.setdefault(name, {})[member] = (value, group, owner)
        self._start_refresher()
        await self._add(name, member, value, group, owner)

    async def _add(self, name: str, member: str, value: bytes, group: str, owner: str) -> None:
        ttl_ms = int(self.ttl * 1000)
        expires = self._now_ms() + ttl_ms
        await self._run(name, ADD, [member, value, group, expires, ttl_ms, owner])

    def node_gone(self, node_id: str) -> None:
        """Reads drop what `node_id` owns from now on (for `ttl` seconds, then it expired)."""
        self._forget_departed()
        if node_id in self.departed or len(self.departed) < MAX_DEPARTED:
            self.departed[node_id] = time.monotonic()

    def node_back(self, node_id: str) -> None:
        """`node_id` is heard again: its entries count again once it refreshes them."""
        self.departed.pop(node_id, None)

    def _forget_departed(self) -> None:
        horizon = time.monotonic() - self.ttl
        for node_id in [n for n, since in self.departed.items() if since < horizon]:
            del self.departed[node_id]

    def _read_args(self) -> list[Any]:
        if self.departed:
            self._forget_departed()
        return [self._now_ms(), *self.departed]

    async def remove(self, name: str, member: str) -> None:
        members = self.local.get(name)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self.local[name]
        await self._run(name, REMOVE, [member])

    async def get(self, name: str) -> list[tuple[str, bytes, str]]:
        """(member, value, group) of every live entry."""
        reply = await self._run(name, GET, self._read_args())
        return [
            (reply[i].decode(), bytes(reply[i + 1]), reply[i + 2].decode())
            for i in range(0, len(reply), 3)
        ]

    async def count(self, name: str) -> tuple[int, int]:
        """(live entries, distinct groups among them)."""
        members, groups = await self._run(name, COUNT, self._read_args())
        return int(members), int(groups)

    async def refresh(self) -> None:
        """Re-add every entry this instance holds (expiry moves `ttl` ahead).

        Straight into the engine's pipelines, one future per entry (no coroutine and
        no task each: at 100,000 entries those were most of a node's CPU), and
        `REFRESH_CHUNK` entries at a time, so what is in flight (and the memory it
        takes, which would stay in the process's RSS) does not grow with the node."""
        ttl_ms = int(self.ttl * 1000)
        expires = self._now_ms() + ttl_ms
        run = self.engine.batcher.run
        entries = [(name, member) for name, members in self.local.items() for member in members]
        failed: list[BaseException] = []
        for start in range(0, len(entries), REFRESH_CHUNK):
            adds = []
            for name, member in entries[start : start + REFRESH_CHUNK]:
                # as it is now: one removed while an earlier chunk was written stays so
                entry = self.local.get(name, {}).get(member)
                if entry is not None:
                    value, group, owner = entry
                    args = [member, value, group, expires, ttl_ms, owner]
                    adds.append(run(name, ADD, self.keys(name), args))
            results = await asyncio.gather(*adds, return_exceptions=True)
            failed += [r for r in results if isinstance(r, BaseException)]
        if failed:
            log.warning("%d %s entries not refreshed: %s", len(failed), self.family, failed[0])

    def _start_refresher(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            await self.refresh()

    async def close(self) -> None:
        """Stop refreshing (entries then expire on their own; nothing is removed)."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None


class ExpiringEntriesStore:
    """What a store kept in `ExpiringEntries` does on the node's lifecycle: passes it on.

    Mixed in before the store's ABC (`RedisPresenceStore`, `RedisUserRegister`),
    whose optional hooks these are.
    """

    entries: ExpiringEntries
    #: Whether `close` also closes the engine (the store made it).
    _owns_engine: bool

    def node_gone(self, node_id: str) -> None:
        self.entries.node_gone(node_id)

    def node_back(self, node_id: str) -> None:
        self.entries.node_back(node_id)

    async def refresh(self) -> None:
        await self.entries.refresh()

    async def close(self) -> None:
        await self.entries.close()
        if self._owns_engine:
            await self.entries.engine.close()
