"""History streams in Redis: the key layout and the Lua scripts, in one place.

Both `RedisHistoryStore` (history reads, acks) and `RedisBroker` (publish:
append + PUB/SUB in one script) run these scripts, so there is one layout.

Keys of channel `c` (prefix `P`, `{t}` = `channel_tag(c)`, one cluster slot):

    P.stream{t}.m    hash  o = last offset, e = epoch, t = ttl (ms) of the last append
    P.stream{t}.l    list  newest first: "<time ms>:<publication JSON>"; offsets are
                           contiguous, so the entry at index i has offset o - i
    P.stream{t}.i    zset  idempotency key -> offset (newest `size` keys kept)
    P.stream{t}.ao   zset  user -> acknowledged offset
    P.stream{t}.ae   hash  user -> epoch of that ack
    P.stream{t}.ax   hash  user -> "<time>:<client id>" of that ack
    P.pub{t}               the PUB/SUB channel (a shard channel in a cluster)

The list and the idempotency keys expire with the stream's ttl; the meta
hash lives `META_TTL` longer so offsets and epoch survive an idle period.
Time comes from the caller's clock (wall time between nodes, a fake clock
in tests), never from Redis, so every node trims by the same rule.

PUB/SUB messages (`P.pub{t}`) are `<version><kind>:<offset>:<epoch>:<body>`:
version `1`; kind `p` publication (body: Publication JSON, offset assigned by
the script; kind `d` the same, published with the `delta` flag), `j`/`l`
join/leave (body: ClientInfo JSON). The position is
written by the script in ASCII so that Lua never has to encode msgspec data.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from tidings.engine.redis import LuaScript, RedisEngine, channel_tag
from tidings.engine.redis_codec import CorruptEntry, decode_publication, encode_publication
from tidings.protocol.centrifuge.messages import Publication
from tidings.store.base import (
    Ack,
    OutOfRange,
    Position,
    StoreWriteError,
    UnrecoverablePosition,
    check_offset,
    check_read,
)

log = logging.getLogger(__name__)

#: How long a stream's offset and epoch outlive its last append (seconds).
META_TTL = 86400.0
#: How long a user's ack of a channel lives after it last moved (seconds).
ACK_TTL = 7 * 86400.0
#: Tops of streams remembered without I/O (least recently updated forgotten first).
MAX_TOPS = 100_000

MESSAGE_VERSION = b"1"
KIND_PUBLICATION = b"p"
#: A publication its publisher wants delivered as a delta (the API's `delta` flag).
KIND_DELTA_PUBLICATION = b"d"
KIND_JOIN = b"j"
KIND_LEAVE = b"l"

_TRIM = """
local function trim(list, now, ttl)
  if ttl <= 0 then return end
  local cutoff = now - ttl
  while true do
    local last = redis.call('lindex', list, -1)
    if not last then return end
    local sep = string.find(last, ':', 1, true)
    local t = sep and tonumber(string.sub(last, 1, sep - 1)) or 0  -- unreadable: expired
    if t > cutoff then return end
    redis.call('rpop', list)
  end
end
-- A stream without meta has the epoch it will get when an append creates it:
-- derived from this server's run id (new after a restart or a lost data set), the
-- era (meta ttl long, so a stream forgotten after its meta expired comes back in a
-- later era with another epoch) and the stream's key. Reads then create nothing.
local function epoch_of(meta, now, keep, create)
  local epoch = redis.call('hget', meta, 'e')
  if epoch then return epoch end
  local run_id = string.match(redis.call('info', 'server'), 'run_id:(%x+)') or ''
  local era = math.floor(now / keep)
  epoch = string.sub(redis.sha1hex(run_id .. ':' .. era .. ':' .. meta), 1, 8)
  if create then
    redis.call('hset', meta, 'e', epoch)
    redis.call('pexpire', meta, keep)
  end
  return epoch
end
"""

# KEYS: meta, list, idem. ARGV: body, size, ttl ms, now ms, idempotency key, meta ttl
# ms, pub/sub channel ('' = none), PUBLISH or SPUBLISH, message head.
# Returns {offset, epoch, 1 if appended / 0 if the key was already there}.
APPEND = (
    _TRIM
    + """
local meta, list, idem = KEYS[1], KEYS[2], KEYS[3]
local size, ttl, now = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local keep = math.max(tonumber(ARGV[6]), ttl)
local epoch = epoch_of(meta, now, tonumber(ARGV[6]), true)
if ARGV[5] ~= '' then
  local seen = redis.call('zscore', idem, ARGV[5])
  if seen then return {tonumber(seen), epoch, 0} end
end
local offset = redis.call('hincrby', meta, 'o', 1)
redis.call('hset', meta, 't', ttl)
redis.call('pexpire', meta, keep)
redis.call('lpush', list, ARGV[4] .. ':' .. ARGV[1])
redis.call('ltrim', list, 0, size - 1)
trim(list, now, ttl)
if ttl > 0 then redis.call('pexpire', list, ttl) end
if ARGV[5] ~= '' then
  redis.call('zadd', idem, offset, ARGV[5])
  redis.call('zremrangebyrank', idem, 0, -math.max(size, 1) - 1)
  redis.call('pexpire', idem, keep)
end
if ARGV[7] ~= '' then
  redis.call(ARGV[8], ARGV[7], ARGV[9] .. offset .. ':' .. epoch .. ':' .. ARGV[1])
end
return {offset, epoch, 1}
"""
)

# KEYS: meta, list. ARGV: now ms, since offset (-1 = from the start), since epoch,
# limit (-1 = all), reverse (0/1), meta ttl ms.
# Returns {offset, epoch, status, index of the first entry, entries newest first...};
# status '' or why `since` cannot be served.
READ = (
    _TRIM
    + """
local meta, list = KEYS[1], KEYS[2]
local now, since, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
local epoch = epoch_of(meta, now, tonumber(ARGV[6]), false)
local offset = tonumber(redis.call('hget', meta, 'o') or '0')
trim(list, now, tonumber(redis.call('hget', meta, 't') or '0'))
local count = redis.call('llen', list)
if since >= 0 then
  if ARGV[3] ~= '' and ARGV[3] ~= epoch then return {offset, epoch, 'epoch', 0} end
  if since > offset then return {offset, epoch, 'beyond', 0} end
  if since + 1 < offset - count + 1 then return {offset, epoch, 'trimmed', 0} end
  count = offset - since
end
if limit >= 0 and limit < count then
  if ARGV[5] == '1' then count = limit else
    local first = count - limit
    local reply = {offset, epoch, '', first}
    if limit == 0 then return reply end
    for _, entry in ipairs(redis.call('lrange', list, first, count - 1)) do
      reply[#reply + 1] = entry
    end
    return reply
  end
end
local reply = {offset, epoch, '', 0}
if count == 0 then return reply end
for _, entry in ipairs(redis.call('lrange', list, 0, count - 1)) do
  reply[#reply + 1] = entry
end
return reply
"""
)

# KEYS: ao, ae, ax. ARGV: user, offset, epoch, "<time>:<client>", ttl ms.
# Returns the ack in force afterwards: {offset, epoch, "<time>:<client>"}.
ACK = """
local user, offset, epoch = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local current = redis.call('zscore', KEYS[1], user)
local current_epoch = redis.call('hget', KEYS[2], user)
if current and current_epoch == epoch and tonumber(current) >= offset then
  return {tonumber(current), current_epoch, redis.call('hget', KEYS[3], user)}
end
redis.call('zadd', KEYS[1], offset, user)
redis.call('hset', KEYS[2], user, epoch)
redis.call('hset', KEYS[3], user, ARGV[4])
for i = 1, 3 do redis.call('pexpire', KEYS[i], ARGV[5]) end
return {offset, epoch, ARGV[4]}
"""

# KEYS: ao, ae, ax. ARGV: user. Returns {} or {offset, epoch, "<time>:<client>"}.
ACKED = """
local current = redis.call('zscore', KEYS[1], ARGV[1])
if not current then return {} end
local epoch = redis.call('hget', KEYS[2], ARGV[1])
return {tonumber(current), epoch, redis.call('hget', KEYS[3], ARGV[1])}
"""

# KEYS: meta, ao, ae, ax. ARGV: offset, limit.
# Returns {user, offset, epoch, "<time>:<client>", ...} of acks covering offset in the
# current epoch.
ACKS = """
local epoch = redis.call('hget', KEYS[1], 'e')
local reply = {}
if not epoch then return reply end
local limit = tonumber(ARGV[2])
local found = redis.call('zrangebyscore', KEYS[2], ARGV[1], '+inf', 'WITHSCORES')
for i = 1, #found, 2 do
  if #reply >= 4 * limit then break end
  local user = found[i]
  if redis.call('hget', KEYS[3], user) == epoch then
    reply[#reply + 1] = user
    reply[#reply + 1] = tonumber(found[i + 1])
    reply[#reply + 1] = epoch
    reply[#reply + 1] = redis.call('hget', KEYS[4], user)
  end
end
return reply
"""


_SCRIPTS = {name: LuaScript(src) for name, src in (("append", APPEND), ("read", READ))}
_ACK, _ACKED, _ACKS = LuaScript(ACK), LuaScript(ACKED), LuaScript(ACKS)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ack_of(offset: Any, epoch: Any, extra: Any) -> Ack:
    stamp, _, client = _text(extra or b"0:").partition(":")
    return Ack(int(offset), _text(epoch), float(stamp or 0), client)


class StreamKeys:
    """The names of one channel's keys (see the module docstring)."""

    __slots__ = ("acked", "epochs", "idem", "list", "meta", "pubsub", "stamps")

    def __init__(self, prefix: str, channel: str) -> None:
        tag = channel_tag(channel)
        base = f"{prefix}.stream{tag}."
        self.meta = base + "m"
        self.list = base + "l"
        self.idem = base + "i"
        self.acked = base + "ao"
        self.epochs = base + "ae"
        self.stamps = base + "ax"
        self.pubsub = f"{prefix}.pub{tag}"


def pubsub_channel(prefix: str, channel: str) -> str:
    """The PUB/SUB channel of `channel`'s publications, joins and leaves."""
    return f"{prefix}.pub{channel_tag(channel)}"


class RedisStreams:
    """Runs the history scripts for any channel; remembers the last known tops.

    `clock` gives wall time in seconds (the same notion on every node);
    `wait_replicas` > 0 makes every append wait (Redis WAIT) until that many
    replicas have it, or `wait_timeout` passes (then the append fails).
    """

    def __init__(
        self,
        engine: RedisEngine,
        clock: Callable[[], float] = time.time,
        *,
        wait_replicas: int = 0,
        wait_timeout: float = 0.5,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.wait_replicas = wait_replicas
        self.wait_timeout = wait_timeout
        if wait_replicas > 0 and wait_timeout >= engine.settings.command_timeout:
            raise ValueError(
                f"the replica wait ({wait_timeout}s) must be shorter than the Redis command"
                f" timeout ({engine.settings.command_timeout}s)"
            )
        self._tops: OrderedDict[str, Position] = OrderedDict()

    def keys(self, channel: str) -> StreamKeys:
        """The channel's keys; `OutOfRange` for a name Redis cannot hold (not UTF-8)."""
        _check_utf8("channel name", channel)
        return StreamKeys(self.engine.prefix, channel)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def learn(self, channel: str, position: Position) -> None:
        """Remember `position` as the channel's top unless a later one is known."""
        known = self._tops.get(channel)
        if known is not None and known.epoch == position.epoch and known.offset >= position.offset:
            return
        self._tops[channel] = position
        self._tops.move_to_end(channel)
        if len(self._tops) > MAX_TOPS:
            self._tops.popitem(last=False)

    def top(self, channel: str) -> Position | None:
        return self._tops.get(channel)

    async def append(
        self,
        channel: str,
        pub: Publication,
        size: int,
        ttl: float,
        idempotency_key: str = "",
        *,
        publish: bool = False,
        delta: bool = False,
    ) -> Position:
        """Append `pub` (its offset is set here); with `publish`, PUBLISH it in the same step.

        `delta` marks the published message (not the stored entry) as a delta publication.
        """
        check_offset("history size", size)
        keys = self.keys(channel)
        body = encode_publication(pub)
        command = "SPUBLISH" if self.engine.sharded_pubsub else "PUBLISH"
        args: list[Any] = [
            body,
            max(size, 1),
            int(ttl * 1000),
            self._now_ms(),
            idempotency_key,
            int(META_TTL * 1000),
            keys.pubsub if publish else "",
            command,
            MESSAGE_VERSION + (KIND_DELTA_PUBLICATION if delta else KIND_PUBLICATION) + b":",
        ]
        script = _SCRIPTS["append"]
        key_list = [keys.meta, keys.list, keys.idem]
        if self.wait_replicas > 0:
            reply = await self.engine.call(
                channel, lambda: self._append_and_wait(channel, script, key_list, args)
            )
        else:
            reply = await self.engine.call(
                channel, lambda: self.engine.run(channel, script, key_list, args)
            )
        offset, epoch, appended = int(reply[0]), _text(reply[1]), int(reply[2])
        position = Position(offset, epoch)
        if appended:
            pub.offset = offset
        self.learn(channel, position)
        return position

    async def _append_and_wait(
        self, channel: str, script: LuaScript, keys: list[str], args: list[Any]
    ) -> Any:
        # WAIT counts the replicas that have this connection's writes: both on one
        # connection, so a pipeline to the server (or cluster primary) of the channel.
        node = await self.engine.primary_for(channel)
        for _ in range(2):
            pipe = node.pipeline(transaction=False)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", self.wait_replicas, int(self.wait_timeout * 1000))
            reply, acked = await pipe.execute(raise_on_error=False)
            if not isinstance(reply, NoScriptError):
                break
            await node.script_load(script.source)  # first use on this server
        if isinstance(reply, Exception):
            raise reply
        if isinstance(acked, Exception):
            raise acked
        if int(acked) < self.wait_replicas:
            raise StoreWriteError(
                f"only {acked} of {self.wait_replicas} Redis replicas acknowledged the"
                f" publication within {self.wait_timeout}s"
            )
        return reply

    async def read(
        self,
        channel: str,
        since: Position | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> tuple[list[Publication], Position]:
        check_read(since, limit)
        keys = self.keys(channel)
        args: list[Any] = [
            self._now_ms(),
            since.offset if since is not None else -1,
            since.epoch if since is not None else "",
            limit,
            1 if reverse else 0,
            int(META_TTL * 1000),
        ]
        script = _SCRIPTS["read"]
        reply = await self.engine.call(
            channel, lambda: self.engine.run(channel, script, [keys.meta, keys.list], args)
        )
        top = Position(int(reply[0]), _text(reply[1]))
        self.learn(channel, top)
        status = _text(reply[2])
        if status:
            raise UnrecoverablePosition(f"position {since} in {channel!r}: {status}")
        first = int(reply[3])
        pubs: list[Publication] = []
        for index, entry in enumerate(reply[4:], first):
            try:
                pub = decode_publication(entry[entry.find(b":") + 1 :])
            except CorruptEntry as exc:
                # Never a silent gap: a reader that needs every publication is told.
                if since is not None:
                    raise UnrecoverablePosition(
                        f"offset {top.offset - index} of {channel!r} is unreadable"
                    ) from None
                log.warning("skipping offset %d of %r: %s", top.offset - index, channel, exc)
                continue
            pub.offset = top.offset - index
            pubs.append(pub)
        if not reverse:
            pubs.reverse()
        return pubs, top

    async def remove(self, channel: str) -> None:
        keys = self.keys(channel)
        client = self.engine.client_for(channel)
        await self.engine.call(channel, lambda: client.delete(keys.list, keys.idem))

    async def num_streams(self) -> int:
        """Streams with a stored position, counted by a SCAN of every primary."""
        pattern = _glob_escape(f"{self.engine.prefix}.stream") + "{*}.m"
        count = 0
        for client in await self.engine.primaries():
            count += await self.engine.call("", partial(_scan_count, client, pattern))
        return count

    async def find(self, channel: str, idempotency_key: str) -> int:
        keys = self.keys(channel)
        client = self.engine.client_for(channel)
        score = await self.engine.call(channel, lambda: client.zscore(keys.idem, idempotency_key))
        return int(score) if score is not None else 0

    async def ack(self, user: str, channel: str, position: Position, client_id: str) -> Ack:
        check_offset("ack offset", position.offset)
        _check_utf8("user", user)
        keys = self.keys(channel)
        args: list[Any] = [
            user,
            position.offset,
            position.epoch,
            f"{time.time()}:{client_id}",
            int(ACK_TTL * 1000),
        ]
        reply = await self.engine.call(
            channel,
            lambda: self.engine.run(channel, _ACK, [keys.acked, keys.epochs, keys.stamps], args),
        )
        return _ack_of(*reply)

    async def acked(self, user: str, channel: str) -> Ack | None:
        keys = self.keys(channel)
        reply = await self.engine.call(
            channel,
            lambda: self.engine.run(
                channel, _ACKED, [keys.acked, keys.epochs, keys.stamps], [user]
            ),
        )
        return _ack_of(*reply) if reply else None

    async def acks(self, channel: str, offset: int, limit: int = 100) -> list[tuple[str, Ack]]:
        check_offset("offset", offset)
        keys = self.keys(channel)
        key_list = [keys.meta, keys.acked, keys.epochs, keys.stamps]
        reply = await self.engine.call(
            channel, lambda: self.engine.run(channel, _ACKS, key_list, [offset, max(limit, 0)])
        )
        return [
            (_text(reply[i]), _ack_of(reply[i + 1], reply[i + 2], reply[i + 3]))
            for i in range(0, len(reply), 4)
        ]


def _check_utf8(what: str, text: str) -> None:
    """Refuse (before it joins a shared pipeline) text that cannot be sent as UTF-8."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise OutOfRange(f"{what} is not valid UTF-8: {text!r}") from None


async def _scan_count(client: Redis, pattern: str) -> int:
    return sum([1 async for _ in client.scan_iter(match=pattern, count=1000)])


def _glob_escape(text: str) -> str:
    """`text` matched literally in a Redis glob pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
