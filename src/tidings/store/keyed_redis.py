"""The keyed state store in Redis: map channels seen by every node of a cluster.

Keys of channel `c` (prefix `P`, `{t}` = `channel_tag(c)`), all in one slot:

    P.map{t}.m   hash    top (last offset), epoch
    P.map{t}.k   zset    live keys, score 0 (ZRANGEBYLEX gives key order for pages)
    P.map{t}.d   hash    key -> data
    P.map{t}.o   hash    key -> offset of its last change
    P.map{t}.t   hash    key -> time of its last change (ms)
    P.map{t}.x   zset    key -> expiry time (ms), keys with a TTL only
    P.map{t}.s   stream  the changes; entry id `<offset>-0`, fields k, d, r, t

Every change is one Lua script: offset, state and stream move together, so
a state page at position P plus the stream after P is the whole state. The
stream is trimmed to `stream_size` entries by XADD and expires as a whole
`stream_ttl` after the last change; a read checks the age of the first
change after the asked position, so a change older than `stream_ttl` is
never returned and its absence is an `UnrecoverablePosition`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from tidings.engine.redis import LuaScript, RedisEngine, channel_tag
from tidings.store.base import Position, UnrecoverablePosition, check_offset
from tidings.store.keyed import (
    KeyedEntry,
    KeyedStateStore,
    MapLimits,
    StatePage,
    check_key,
    check_limits,
    check_page,
)

_APPEND = """
local function append(stream, top, key, data, removed, now, size, ttl)
  if tonumber(size) > 0 and tonumber(ttl) > 0 then
    redis.call('xadd', stream, 'maxlen', size, top .. '-0',
      'k', key, 'd', data, 'r', removed, 't', now)
    redis.call('pexpire', stream, ttl)
    redis.call('hset', KEYS[1], 'sttl', ttl)
  else
    redis.call('del', stream)
  end
end
local function drop(keys, key)
  redis.call('zrem', keys[2], key)
  redis.call('hdel', keys[3], key)
  redis.call('hdel', keys[4], key)
  redis.call('hdel', keys[5], key)
  redis.call('zrem', keys[6], key)
end
local function alive(keys, key, now)
  if not redis.call('zscore', keys[2], key) then return false end
  local at = redis.call('zscore', keys[6], key)
  return (not at) or tonumber(at) > tonumber(now)
end
"""

# KEYS: m k d o t x s. ARGV: key, data, now ms, expires at ms (0: never), size, ttl ms, epoch.
PUBLISH = LuaScript(
    _APPEND
    + """
redis.call('hsetnx', KEYS[1], 'epoch', ARGV[7])
local top = redis.call('hincrby', KEYS[1], 'top', 1)
redis.call('zadd', KEYS[2], 0, ARGV[1])
redis.call('hset', KEYS[3], ARGV[1], ARGV[2])
redis.call('hset', KEYS[4], ARGV[1], top)
redis.call('hset', KEYS[5], ARGV[1], ARGV[3])
if ARGV[4] ~= '0' then
  redis.call('zadd', KEYS[6], ARGV[4], ARGV[1])
else
  redis.call('zrem', KEYS[6], ARGV[1])
end
append(KEYS[7], top, ARGV[1], ARGV[2], '0', ARGV[3], ARGV[5], ARGV[6])
return {top, redis.call('hget', KEYS[1], 'epoch')}
"""
)

# KEYS: m k d o t x s. ARGV: key, now ms, size, ttl ms. Returns {top, epoch, removed?}.
REMOVE = LuaScript(
    _APPEND
    + """
local top = tonumber(redis.call('hget', KEYS[1], 'top') or '0')
local epoch = redis.call('hget', KEYS[1], 'epoch') or ''
if not alive(KEYS, ARGV[1], ARGV[2]) then return {top, epoch, 0} end
drop(KEYS, ARGV[1])
top = redis.call('hincrby', KEYS[1], 'top', 1)
append(KEYS[7], top, ARGV[1], '', '1', ARGV[2], ARGV[3], ARGV[4])
return {top, epoch, 1}
"""
)

# KEYS: m k d o t x s. ARGV: now ms, limit, size, ttl ms. Returns {key, offset, ...}.
EXPIRE = LuaScript(
    _APPEND
    + """
local gone = redis.call('zrangebyscore', KEYS[6], '-inf', ARGV[1], 'limit', 0, ARGV[2])
local reply = {}
for _, key in ipairs(gone) do
  drop(KEYS, key)
  local top = redis.call('hincrby', KEYS[1], 'top', 1)
  append(KEYS[7], top, key, '', '1', ARGV[1], ARGV[3], ARGV[4])
  reply[#reply + 1] = key
  reply[#reply + 1] = top
end
return reply
"""
)

# KEYS: m k d o t x. ARGV: start ('-' or '(key'), limit, now ms.
# Returns {top, epoch, more, key, data, offset, time, ...} (expired keys left out).
READ_STATE = LuaScript(
    _APPEND
    + """
local top = tonumber(redis.call('hget', KEYS[1], 'top') or '0')
local epoch = redis.call('hget', KEYS[1], 'epoch') or ''
local limit = tonumber(ARGV[2])
local keys = redis.call('zrangebylex', KEYS[2], ARGV[1], '+', 'limit', 0, limit + 1)
local cursor = ''
if #keys > limit then keys[#keys] = nil; cursor = keys[#keys] end
local reply = {top, epoch, cursor}
for _, key in ipairs(keys) do
  if alive(KEYS, key, ARGV[3]) then
    reply[#reply + 1] = key
    reply[#reply + 1] = redis.call('hget', KEYS[3], key)
    reply[#reply + 1] = redis.call('hget', KEYS[4], key)
    reply[#reply + 1] = redis.call('hget', KEYS[5], key)
  end
end
return reply
"""
)

# KEYS: m s. ARGV: start id ('-' or '(<offset>-0'), count, now ms.
# Returns {top, epoch, id, k, d, r, t, ...}; changes older than the stream TTL are left out.
READ_STREAM = LuaScript("""
local top = tonumber(redis.call('hget', KEYS[1], 'top') or '0')
local epoch = redis.call('hget', KEYS[1], 'epoch') or ''
local oldest = tonumber(ARGV[3]) - tonumber(redis.call('hget', KEYS[1], 'sttl') or '0')
local reply = {top, epoch}
for _, item in ipairs(redis.call('xrange', KEYS[2], ARGV[1], '+', 'count', ARGV[2])) do
  local f = {}
  for i = 1, #item[2], 2 do f[item[2][i]] = item[2][i + 1] end
  if tonumber(f['t']) <= oldest then
    reply = {top, epoch}
  else
  reply[#reply + 1] = item[1]
  reply[#reply + 1] = f['k']
  reply[#reply + 1] = f['d']
  reply[#reply + 1] = f['r']
  reply[#reply + 1] = f['t']
  end
end
return reply
""")

# KEYS: m. Returns {top, epoch}.
POSITION = LuaScript("""
local top = tonumber(redis.call('hget', KEYS[1], 'top') or '0')
return {top, redis.call('hget', KEYS[1], 'epoch') or ''}
""")

# KEYS: k x. ARGV: now ms.
STATS = LuaScript("""
return redis.call('zcard', KEYS[1]) - redis.call('zcount', KEYS[2], '-inf', ARGV[1])
""")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisKeyedStateStore(KeyedStateStore):
    """Keyed state and its change stream in Redis (see the module docstring)."""

    def __init__(
        self,
        engine: RedisEngine,
        *,
        clock: Callable[[], float] = time.time,
        owns_engine: bool = False,
    ) -> None:
        self.engine = engine
        self._clock = clock
        self._owns_engine = owns_engine

    def keys(self, channel: str) -> list[str]:
        base = f"{self.engine.prefix}.map{channel_tag(channel)}."
        return [base + suffix for suffix in "mkdotxs"]

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _run(self, channel: str, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        return await self.engine.call(channel, lambda: self.engine.run(channel, script, keys, args))

    async def publish(
        self, channel: str, key: str, data: bytes, limits: MapLimits
    ) -> tuple[KeyedEntry, Position]:
        check_key(key)
        check_limits(limits)
        now = self._now_ms()
        expires = now + int(limits.key_ttl * 1000) if limits.key_ttl > 0 else 0
        top, epoch = await self._run(
            channel,
            PUBLISH,
            self.keys(channel),
            [key, bytes(data), now, expires, *self._stream_args(limits), secrets.token_hex(4)],
        )
        return KeyedEntry(key, bytes(data), int(top), now), Position(int(top), _text(epoch))

    @staticmethod
    def _stream_args(limits: MapLimits) -> list[int]:
        return [limits.stream_size, int(limits.stream_ttl * 1000)]

    async def remove(
        self, channel: str, key: str, limits: MapLimits
    ) -> tuple[KeyedEntry | None, Position]:
        check_key(key)
        check_limits(limits)
        now = self._now_ms()
        top, epoch, removed = await self._run(
            channel, REMOVE, self.keys(channel), [key, now, *self._stream_args(limits)]
        )
        position = Position(int(top), _text(epoch))
        if not removed:
            return None, position
        return KeyedEntry(key, b"", int(top), now, removed=True), position

    async def read_state(self, channel: str, cursor: str = "", limit: int = 100) -> StatePage:
        check_page(limit)
        start = "(" + cursor if cursor else "-"
        reply = await self._run(
            channel, READ_STATE, self.keys(channel)[:6], [start, limit, self._now_ms()]
        )
        entries = [
            KeyedEntry(_text(reply[i]), bytes(reply[i + 1]), int(reply[i + 2]), int(reply[i + 3]))
            for i in range(3, len(reply), 4)
        ]
        # The cursor is the last key looked at (alive or not): expired keys are skipped once.
        return StatePage(entries, Position(int(reply[0]), _text(reply[1])), _text(reply[2]))

    async def read_stream(
        self, channel: str, since: Position | None, limit: int = 100
    ) -> tuple[list[KeyedEntry], Position]:
        check_page(limit)
        if since is not None:
            check_offset("offset", since.offset)
        start = "-" if since is None else f"({since.offset}-0"
        keys = self.keys(channel)
        reply = await self._run(
            channel, READ_STREAM, [keys[0], keys[6]], [start, limit, self._now_ms()]
        )
        top = Position(int(reply[0]), _text(reply[1]))
        entries = [
            KeyedEntry(
                _text(reply[i + 1]),
                bytes(reply[i + 2]),
                int(_text(reply[i]).split("-", 1)[0]),
                int(reply[i + 4]),
                removed=_text(reply[i + 3]) == "1",
            )
            for i in range(2, len(reply), 5)
        ]
        if since is None:
            return entries, top
        fresh_start = since.offset == 0 and since.epoch == ""
        if not fresh_start and since.epoch != top.epoch:
            raise UnrecoverablePosition("the stream has another epoch")
        if since.offset > top.offset:
            raise UnrecoverablePosition("position ahead of the stream")
        if since.offset == top.offset:
            return [], top
        if not entries or entries[0].offset != since.offset + 1:
            raise UnrecoverablePosition("changes after the position were trimmed")
        return entries, top

    async def expire(self, channel: str, limits: MapLimits, limit: int = 1000) -> list[KeyedEntry]:
        check_limits(limits)
        now = self._now_ms()
        reply = await self._run(
            channel, EXPIRE, self.keys(channel), [now, limit, *self._stream_args(limits)]
        )
        return [
            KeyedEntry(_text(reply[i]), b"", int(reply[i + 1]), now, removed=True)
            for i in range(0, len(reply), 2)
        ]

    async def position(self, channel: str) -> Position:
        top, epoch = await self._run(channel, POSITION, self.keys(channel)[:1], [])
        return Position(int(top), _text(epoch))

    async def stats(self, channel: str) -> int:
        keys = self.keys(channel)
        return int(await self._run(channel, STATS, [keys[1], keys[5]], [self._now_ms()]))

    async def clear(self, channel: str) -> None:
        client = self.engine.client_for(channel)
        keys = self.keys(channel)
        await self.engine.call(channel, lambda: client.delete(*keys))

    async def close(self) -> None:
        if self._owns_engine:
            await self.engine.close()
