"""The keyed state store in Redis: map channels seen by every node of a cluster.

Keys of channel `c` (prefix `P`, `{t}` = `channel_tag(c)`), all in one slot:

    P.map{t}.m   hash    top (last offset), epoch
    P.map{t}.k   zset    live keys, score 0 (ZRANGEBYLEX gives key order for pages)
    P.map{t}.d   hash    key -> data
    P.map{t}.o   hash    key -> offset of its last change
    P.map{t}.t   hash    key -> time of its last change (ms)
    P.map{t}.x   zset    key -> expiry time (ms), keys with a TTL only
    P.map{t}.s   stream  the changes; entry id `<offset>-0`, fields k, d, r, t, a
    P.map{t}.v   hash    key -> version of its last versioned set (decimal)
    P.map{t}.w   hash    key -> the version epoch of that set
    P.map{t}.a   hash    key -> tags and writer info (msgpack; absent when none)
    P.map{t}.i:<idempotency key>   string  "<expires>:<top>:<epoch>" of the first write

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

import msgspec

from tidings.engine.redis import LuaScript, RedisEngine, channel_tag
from tidings.store.base import Position, UnrecoverablePosition, check_offset
from tidings.store.keyed import (
    IDEMPOTENCY_TTL,
    KeyedEntry,
    KeyedStateStore,
    MapLimits,
    StatePage,
    WriteCondition,
    WriteSuppressed,
    check_key,
    check_limits,
    check_page,
    check_resume,
    check_stream_read,
    check_write,
)

_APPEND = """
local function append(stream, top, key, data, removed, now, size, ttl, extras)
  if tonumber(size) > 0 and tonumber(ttl) > 0 then
    redis.call('xadd', stream, 'maxlen', size, top .. '-0',
      'k', key, 'd', data, 'r', removed, 't', now, 'a', extras)
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
  redis.call('hdel', keys[8], key)
  redis.call('hdel', keys[9], key)
  redis.call('hdel', keys[10], key)
end
-- a <= b for decimal strings without leading zeros (versions exceed Lua's exact integers)
local function version_le(a, b)
  if #a ~= #b then return #a < #b end
  return a <= b
end
-- An idempotency key: "<expires ms>:<top>:<epoch>" (expiry by the store's clock; PX cleans up).
local function repeated(ikey, now)
  local seen = redis.call('get', ikey)
  if not seen then return nil end
  local a = string.find(seen, ':', 1, true)
  local b = string.find(seen, ':', a + 1, true)
  if tonumber(string.sub(seen, 1, a - 1)) <= tonumber(now) then return nil end
  return {tonumber(string.sub(seen, a + 1, b - 1)), string.sub(seen, b + 1)}
end
local function remember(ikey, top, epoch, now, ttl)
  local expires = tonumber(now) + tonumber(ttl)
  redis.call('set', ikey, string.format('%d', expires) .. ':' .. top .. ':' .. epoch, 'px', ttl)
end
local function alive(keys, key, now)
  if not redis.call('zscore', keys[2], key) then return false end
  local at = redis.call('zscore', keys[6], key)
  return (not at) or tonumber(at) > tonumber(now)
end
"""

# KEYS: m k d o t x s v w a i. ARGV: key, data, now ms, expires at ms (0: never), size,
# ttl ms, epoch, version, version epoch, key mode, refresh ttl (0/1), extras, idempotency
# ttl ms (0: no idempotency key). Returns {top, epoch, suppress reason or ''}.
PUBLISH = LuaScript(
    _APPEND
    + """
local top0 = tonumber(redis.call('hget', KEYS[1], 'top') or '0')
local epoch0 = redis.call('hget', KEYS[1], 'epoch') or ''
if ARGV[13] ~= '0' then
  local seen = repeated(KEYS[11], ARGV[3])
  if seen then return {seen[1], seen[2], 'idempotency'} end
end
local live = alive(KEYS, ARGV[1], ARGV[3])
if ARGV[8] ~= '0' and live then
  local stored = redis.call('hget', KEYS[8], ARGV[1])
  local stored_epoch = redis.call('hget', KEYS[9], ARGV[1]) or ''
  if stored and (ARGV[9] == '' or ARGV[9] == stored_epoch) and version_le(ARGV[8], stored) then
    return {top0, epoch0, 'version'}
  end
end
if ARGV[10] == 'if_new' and live then
  if ARGV[11] == '1' and ARGV[4] ~= '0' then redis.call('zadd', KEYS[6], ARGV[4], ARGV[1]) end
  return {top0, epoch0, 'key_exists'}
end
if ARGV[10] == 'if_exists' and not live then return {top0, epoch0, 'key_not_found'} end
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
if ARGV[8] ~= '0' then
  redis.call('hset', KEYS[8], ARGV[1], ARGV[8])
  redis.call('hset', KEYS[9], ARGV[1], ARGV[9])
end
if ARGV[12] ~= '' then
  redis.call('hset', KEYS[10], ARGV[1], ARGV[12])
else
  redis.call('hdel', KEYS[10], ARGV[1])
end
append(KEYS[7], top, ARGV[1], ARGV[2], '0', ARGV[3], ARGV[5], ARGV[6], ARGV[12])
local epoch = redis.call('hget', KEYS[1], 'epoch')
if ARGV[13] ~= '0' then remember(KEYS[11], top, epoch, ARGV[3], ARGV[13]) end
return {top, epoch, ''}
"""
)

# KEYS: m k d o t x s v w a i. ARGV: key, now ms, size, ttl ms, idempotency ttl ms.
# Returns {top, epoch, removed (0/1), suppress reason or '', extras}.
REMOVE = LuaScript(
    _APPEND
    + """
local top = tonumber(redis.call('hget', KEYS[1], 'top') or '0')
local epoch = redis.call('hget', KEYS[1], 'epoch') or ''
if ARGV[5] ~= '0' then
  local seen = repeated(KEYS[11], ARGV[2])
  if seen then return {seen[1], seen[2], 0, 'idempotency', ''} end
end
if not alive(KEYS, ARGV[1], ARGV[2]) then return {top, epoch, 0, '', ''} end
local extras = redis.call('hget', KEYS[10], ARGV[1]) or ''
drop(KEYS, ARGV[1])
top = redis.call('hincrby', KEYS[1], 'top', 1)
append(KEYS[7], top, ARGV[1], '', '1', ARGV[2], ARGV[3], ARGV[4], extras)
if ARGV[5] ~= '0' then remember(KEYS[11], top, epoch, ARGV[2], ARGV[5]) end
return {top, epoch, 1, '', extras}
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
  append(KEYS[7], top, key, '', '1', ARGV[1], ARGV[3], ARGV[4], '')
  reply[#reply + 1] = key
  reply[#reply + 1] = top
end
return reply
"""
)

# KEYS: m k d o t x s v w a. ARGV: start ('-' or '(key'), limit, now ms.
# Returns {top, epoch, more, key, data, offset, time, extras, ...} (expired keys left out).
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
    reply[#reply + 1] = redis.call('hget', KEYS[10], key) or ''
  end
end
return reply
"""
)

# KEYS: m k d o t x s v w a. ARGV: key, now ms.
# Returns {top, epoch} or {top, epoch, data, offset, time, extras} when the key is alive.
READ_KEY = LuaScript(
    _APPEND
    + """
local top = tonumber(redis.call('hget', KEYS[1], 'top') or '0')
local epoch = redis.call('hget', KEYS[1], 'epoch') or ''
if not alive(KEYS, ARGV[1], ARGV[2]) then return {top, epoch} end
return {top, epoch, redis.call('hget', KEYS[3], ARGV[1]), redis.call('hget', KEYS[4], ARGV[1]),
  redis.call('hget', KEYS[5], ARGV[1]), redis.call('hget', KEYS[10], ARGV[1]) or ''}
"""
)

# KEYS: m s. ARGV: start id ('-' or '(<offset>-0'), count, now ms.
# Returns {top, epoch, id, k, d, r, t, a, ...}; changes older than the stream TTL are left out.
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
  reply[#reply + 1] = f['a'] or ''
  end
end
return reply
""")

# KEYS: m s. ARGV: end id ('+' or '(<offset>-0'), count, now ms.
# Returns {top, epoch, id, k, d, r, t, a, ...} newest first, none older than the stream TTL.
READ_STREAM_BACK = LuaScript("""
local top = tonumber(redis.call('hget', KEYS[1], 'top') or '0')
local epoch = redis.call('hget', KEYS[1], 'epoch') or ''
local oldest = tonumber(ARGV[3]) - tonumber(redis.call('hget', KEYS[1], 'sttl') or '0')
local reply = {top, epoch}
for _, item in ipairs(redis.call('xrevrange', KEYS[2], ARGV[1], '-', 'count', ARGV[2])) do
  local f = {}
  for i = 1, #item[2], 2 do f[item[2][i]] = item[2][i + 1] end
  if tonumber(f['t']) <= oldest then break end
  reply[#reply + 1] = item[1]
  reply[#reply + 1] = f['k']
  reply[#reply + 1] = f['d']
  reply[#reply + 1] = f['r']
  reply[#reply + 1] = f['t']
  reply[#reply + 1] = f['a'] or ''
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


def _extras(tags: dict[str, str] | None, info: bytes) -> bytes:
    """Tags and writer info as kept with a key and a change (empty when neither)."""
    return msgspec.msgpack.encode((tags, info)) if tags or info else b""


def _changes(reply: list[Any]) -> list[KeyedEntry]:
    """The changes of a stream read's reply: {top, epoch, id, k, d, r, t, a, ...}."""
    return [
        _entry(
            reply[i + 1],
            reply[i + 2],
            int(_text(reply[i]).split("-", 1)[0]),
            int(reply[i + 4]),
            bytes(reply[i + 5]),
            removed=_text(reply[i + 3]) == "1",
        )
        for i in range(2, len(reply), 6)
    ]


def _entry(
    key: bytes | str, data: bytes, offset: int, at: int, extras: bytes, *, removed: bool = False
) -> KeyedEntry:
    tags, info = (
        msgspec.msgpack.decode(extras, type=tuple[dict[str, str] | None, bytes])
        if extras
        else (None, b"")
    )
    return KeyedEntry(
        _text(key),
        bytes(data),
        offset,
        at,
        removed=removed,
        tags=tags,
        info=b"" if removed else info,
    )


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
        return [base + suffix for suffix in "mkdotxsvwa"]

    def _idempotency_key(self, channel: str, key: str) -> str:
        return f"{self.engine.prefix}.map{channel_tag(channel)}.i:{key}"

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _run(self, channel: str, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        return await self.engine.call(channel, lambda: self.engine.run(channel, script, keys, args))

    async def publish(
        self,
        channel: str,
        key: str,
        data: bytes,
        limits: MapLimits,
        condition: WriteCondition | None = None,
    ) -> tuple[KeyedEntry, Position]:
        cond = check_write(key, limits, condition or WriteCondition())
        now = self._now_ms()
        expires = now + int(limits.key_ttl * 1000) if limits.key_ttl > 0 else 0
        extras = _extras(cond.tags, cond.info)
        top, epoch, reason = await self._run(
            channel,
            PUBLISH,
            [*self.keys(channel), self._idempotency_key(channel, cond.idempotency_key)],
            [
                key,
                bytes(data),
                now,
                expires,
                *self._stream_args(limits),
                secrets.token_hex(4),
                str(cond.version),
                cond.version_epoch,
                cond.key_mode,
                int(cond.refresh_ttl),
                extras,
                self._idempotency_ttl(cond.idempotency_key),
            ],
        )
        position = Position(int(top), _text(epoch))
        if reason:
            raise WriteSuppressed(_text(reason), position)
        entry = KeyedEntry(key, bytes(data), int(top), now, tags=cond.tags, info=cond.info)
        return entry, position

    @staticmethod
    def _idempotency_ttl(idempotency_key: str) -> int:
        return int(IDEMPOTENCY_TTL * 1000) if idempotency_key else 0

    @staticmethod
    def _stream_args(limits: MapLimits) -> list[int]:
        return [limits.stream_size, int(limits.stream_ttl * 1000)]

    async def remove(
        self,
        channel: str,
        key: str,
        limits: MapLimits,
        idempotency_key: str = "",
    ) -> tuple[KeyedEntry | None, Position]:
        check_write(key, limits, WriteCondition(idempotency_key=idempotency_key))
        now = self._now_ms()
        top, epoch, removed, reason, extras = await self._run(
            channel,
            REMOVE,
            [*self.keys(channel), self._idempotency_key(channel, idempotency_key)],
            [key, now, *self._stream_args(limits), self._idempotency_ttl(idempotency_key)],
        )
        position = Position(int(top), _text(epoch))
        if reason:
            raise WriteSuppressed(_text(reason), position)
        if not removed:
            return None, position
        return _entry(key, b"", int(top), now, bytes(extras), removed=True), position

    async def read_state(self, channel: str, cursor: str = "", limit: int = 100) -> StatePage:
        check_page(limit)
        start = "(" + cursor if cursor else "-"
        reply = await self._run(
            channel, READ_STATE, self.keys(channel), [start, limit, self._now_ms()]
        )
        entries = [
            _entry(reply[i], reply[i + 1], int(reply[i + 2]), int(reply[i + 3]), reply[i + 4])
            for i in range(3, len(reply), 5)
        ]
        # The cursor is the last key looked at (alive or not): expired keys are skipped once.
        return StatePage(entries, Position(int(reply[0]), _text(reply[1])), _text(reply[2]))

    async def read_key(self, channel: str, key: str) -> tuple[KeyedEntry | None, Position]:
        check_key(key)
        reply = await self._run(channel, READ_KEY, self.keys(channel), [key, self._now_ms()])
        position = Position(int(reply[0]), _text(reply[1]))
        if len(reply) == 2:
            return None, position
        return _entry(key, reply[2], int(reply[3]), int(reply[4]), reply[5]), position

    async def read_stream(
        self, channel: str, since: Position | None, limit: int = 100
    ) -> tuple[list[KeyedEntry], Position]:
        check_stream_read(since, limit)
        start = "-" if since is None else f"({since.offset}-0"
        keys = self.keys(channel)
        reply = await self._run(
            channel, READ_STREAM, [keys[0], keys[6]], [start, limit, self._now_ms()]
        )
        top = Position(int(reply[0]), _text(reply[1]))
        entries = _changes(reply)
        if since is None:
            return entries, top
        check_resume(since, top)
        if since.offset == top.offset:
            return [], top
        if not entries or entries[0].offset != since.offset + 1:
            raise UnrecoverablePosition("changes after the position were trimmed")
        return entries, top

    async def read_stream_back(
        self, channel: str, before: int, limit: int = 100
    ) -> tuple[list[KeyedEntry], Position]:
        check_page(limit)
        check_offset("before", before)
        end = f"({before}-0" if before else "+"
        keys = self.keys(channel)
        reply = await self._run(
            channel, READ_STREAM_BACK, [keys[0], keys[6]], [end, limit, self._now_ms()]
        )
        return _changes(reply), Position(int(reply[0]), _text(reply[1]))

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
