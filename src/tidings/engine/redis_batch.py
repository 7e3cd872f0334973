"""Scripts called during one event-loop turn travel as one pipeline per server.

Publishes, presence updates and history reads of a busy node arrive in
bursts; sending each burst as one pipeline costs one round trip instead of
one per call, and keeps the connection count low. Each caller still gets
its own reply (or its own error). A server runs the calls of one turn in
the order they were made (a burst beyond MAX_PIPELINE goes as several
pipelines, one after the other), so callers may issue ordered writes (the
publications of a sequential API batch) in one turn without awaiting each.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

if TYPE_CHECKING:
    from tidings.engine.redis import LuaScript, RedisEngine

#: Commands per pipeline (a bigger burst is split).
MAX_PIPELINE = 1000


class _Call:
    __slots__ = ("args", "future", "keys", "name", "script")

    def __init__(
        self,
        name: str,
        script: LuaScript,
        keys: list[str],
        args: list[Any],
        future: asyncio.Future[Any],
    ) -> None:
        self.name = name
        self.script = script
        self.keys = keys
        self.args = args
        self.future = future


class ScriptBatcher:
    """Collects script calls until the end of the turn, then pipelines them per server."""

    def __init__(self, engine: RedisEngine) -> None:
        self.engine = engine
        self._pending: list[_Call] = []
        self._loaded: set[tuple[int, str]] = set()

    def run(
        self, name: str, script: LuaScript, keys: list[str], args: list[Any]
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append(_Call(name, script, keys, args, future))
        return future

    def _flush(self) -> None:
        calls, self._pending = self._pending, []
        asyncio.get_running_loop().create_task(self._send(calls))

    async def _send(self, calls: list[_Call]) -> None:
        groups: dict[Redis, list[_Call]] = defaultdict(list)
        for call in calls:
            try:
                client = await self.engine.primary_for(call.name)
            except Exception as exc:
                _fail(call, exc)
                continue
            groups[client].append(call)
        await asyncio.gather(
            *(self._send_in_order(client, group) for client, group in groups.items())
        )

    async def _send_in_order(self, client: Redis, calls: list[_Call]) -> None:
        """One pipeline after the other: a server applies a turn's calls in call order."""
        for start in range(0, len(calls), MAX_PIPELINE):
            await self._send_to(client, calls[start : start + MAX_PIPELINE])

    async def _send_to(self, client: Redis, calls: list[_Call]) -> None:
        try:
            results = await self._pipeline(client, calls)
            retry = [
                (n, call)
                for n, (call, result) in enumerate(zip(calls, results, strict=True))
                if isinstance(result, redis_errors.NoScriptError)
            ]
            if retry:  # the server lost its scripts (a restart): load them again
                self._loaded = {k for k in self._loaded if k[0] != id(client)}
                again = await self._pipeline(client, [call for _, call in retry])
                for (n, _), result in zip(retry, again, strict=True):
                    results[n] = result
        except Exception as exc:
            for call in calls:
                _fail(call, exc)
            return
        for call, result in zip(calls, results, strict=True):
            if isinstance(result, Exception):
                _fail(call, result)
            elif not call.future.done():
                call.future.set_result(result)

    async def _pipeline(self, client: Redis, calls: list[_Call]) -> list[Any]:
        for script in {call.script.sha: call.script for call in calls}.values():
            if (id(client), script.sha) not in self._loaded:
                await client.script_load(script.source)
                self._loaded.add((id(client), script.sha))
        # Packed here rather than by redis-py's Pipeline: its per-argument encoding was
        # most of the CPU a publish cost (profiled); the replies are read one by one.
        packed = b"".join(
            pack_command([b"EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args])
            for call in calls
        )
        pool = client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_packed_command(packed, check_health=False)
            results: list[Any] = []
            for _ in calls:
                try:
                    results.append(await conn.read_response())
                except redis_errors.ResponseError as exc:
                    results.append(exc)
            return results
        finally:
            await pool.release(conn)


def pack_command(args: list[Any]) -> bytes:
    """One command in RESP: an array of bulk strings (bytes, str, int or float args)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        kind = arg.__class__
        if kind is bytes:
            data = arg
        elif kind is str:
            data = arg.encode()
        elif kind is int:
            data = b"%d" % arg
        else:
            data = repr(arg).encode() if kind is float else bytes(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _fail(call: _Call, exc: BaseException) -> None:
    if not call.future.done():
        call.future.set_exception(exc)
