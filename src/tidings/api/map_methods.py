"""The server API methods of map channels, named and shaped as Centrifugo v6 names them.

`map_publish`, `map_remove`, `map_read_state`, `map_read_stream`,
`map_stats` and `map_clear` (Centrifugo's `internal/apiproto/api.proto`).

`map_publish` honours `idempotency_key`, `version` / `version_epoch`,
`key_mode` (`if_new`, `if_exists`), `tags` and `b64data` as Centrifugo v6
does: a write they make change nothing answers `suppressed: true` with
Centrifugo's `suppress_reason`. With `delta`, subscribers that negotiated
deltas get the change as a delta against the key's previous value (see
`tidings.core.map_deltas`). `map_read_state` reads one `key`, checks
`revision_*`, and takes `asc` (no effect: there are no ordered channels).
`map_read_stream` with `reverse` reads newest first (below `since_*`
when given: paging back). Fields Centrifugo accepts without acting on them
(`stream_data`, `b64stream_data`, `score`) are refused (107), not ignored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from msgspec import Raw, Struct

from tidings.api.payloads import optional_payload
from tidings.core.commands import checked_payload
from tidings.core.maps import MapChannels
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode
from tidings.store.base import OutOfRange, Position, UnrecoverablePosition
from tidings.store.keyed import MAX_PAGE as MAX_STORE_PAGE
from tidings.store.keyed import InvalidKey, KeyedEntry, WriteCondition, WriteSuppressed

Result = dict[str, Any]


class _Request(Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class MapPublishRequest(_Request):
    channel: str
    key: str
    data: Raw = Raw()
    b64data: str = ""
    stream_data: Raw = Raw()
    b64stream_data: str = ""
    tags: dict[str, str] | None = None
    idempotency_key: str = ""
    delta: bool = False
    version: int = 0
    version_epoch: str = ""
    score: int = 0
    key_mode: str = ""


class MapRemoveRequest(_Request):
    channel: str
    key: str
    idempotency_key: str = ""


class MapReadStateRequest(_Request):
    channel: str
    cursor: str = ""
    limit: int = 0
    key: str = ""
    asc: bool = False
    revision_offset: int = 0
    revision_epoch: str = ""


class MapReadStreamRequest(_Request):
    channel: str
    since_offset: int = 0
    since_epoch: str = ""
    limit: int = 0
    reverse: bool = False


class MapChannelRequest(_Request):
    channel: str


def _refuse(**given: object) -> None:
    names = [name for name, value in given.items() if value]
    if names:
        raise ReplyError(ErrorCode.BAD_REQUEST, f"not supported: {', '.join(names)}")


def _require(channel: str, key: str) -> None:
    """Centrifugo answers 107 to a write without a channel or a key, before anything else."""
    if not channel or not key:
        raise ReplyError(ErrorCode.BAD_REQUEST, "channel and key required")


def _map_payload(data: Raw, b64data: str) -> bytes:
    """The data of a map write: JSON, or base64 of JSON (which wins); may be empty."""
    payload = optional_payload(data, b64data, "b64data")
    return bytes(checked_payload(payload, "data")) if len(payload) else b""


def _check_revision(req: MapReadStateRequest, position: Position) -> None:
    """112 when the state is no longer the one of `revision_*` (another epoch)."""
    if (req.revision_offset or req.revision_epoch) and req.revision_epoch != position.epoch:
        raise ReplyError(ErrorCode.UNRECOVERABLE_POSITION)


def _suppressed(exc: WriteSuppressed) -> Result:
    return {
        "offset": exc.position.offset,
        "epoch": exc.position.epoch,
        "suppressed": True,
        "suppress_reason": exc.reason,
    }


def _entry(entry: KeyedEntry) -> Result:
    result: Result = {"key": entry.key, "offset": entry.offset, "time": entry.time}
    if entry.removed:
        result["removed"] = True
    elif entry.data:
        result["data"] = Raw(entry.data)
    if entry.tags:
        result["tags"] = entry.tags
    return result


def _page_limit(limit: int) -> int:
    """A read's limit (0: only the position, as in Centrifugo), at most the store's page."""
    if limit < 0:
        raise ReplyError(ErrorCode.BAD_REQUEST, "limit must not be negative")
    return min(limit, MAX_STORE_PAGE)


def _read(entries: list[KeyedEntry], position: Position) -> Result:
    """A read's result as Centrifugo writes it: empty entries, offset 0, epoch "" omitted."""
    result: Result = {}
    if entries:
        result["entries"] = [_entry(e) for e in entries]
    if position.offset:
        result["offset"] = position.offset
    if position.epoch:
        result["epoch"] = position.epoch
    return result


class MapApi:
    """The map methods against a node's `MapChannels`."""

    def __init__(self, maps: MapChannels) -> None:
        self.maps = maps

    def methods(self) -> dict[str, tuple[type[Any], Callable[[Any], Awaitable[Result]]]]:
        return {
            "map_publish": (MapPublishRequest, self.map_publish),
            "map_remove": (MapRemoveRequest, self.map_remove),
            "map_read_state": (MapReadStateRequest, self.map_read_state),
            "map_read_stream": (MapReadStreamRequest, self.map_read_stream),
            "map_stats": (MapChannelRequest, self.map_stats),
            "map_clear": (MapChannelRequest, self.map_clear),
        }

    async def map_publish(self, req: MapPublishRequest) -> Result:
        _refuse(
            stream_data=len(req.stream_data),
            b64stream_data=req.b64stream_data,
            score=req.score,
        )
        _require(req.channel, req.key)
        if req.key_mode not in ("", "if_new", "if_exists"):
            raise ReplyError(ErrorCode.BAD_REQUEST, "key_mode must be if_new or if_exists")
        data = _map_payload(req.data, req.b64data)
        condition = WriteCondition(
            idempotency_key=req.idempotency_key,
            version=req.version,
            version_epoch=req.version_epoch,
            key_mode=req.key_mode,
            tags=req.tags or None,
        )
        try:
            position = await self.maps.publish(
                req.channel, req.key, data, condition, delta=req.delta
            )
        except WriteSuppressed as exc:
            return _suppressed(exc)
        return {"offset": position.offset, "epoch": position.epoch}

    async def map_remove(self, req: MapRemoveRequest) -> Result:
        _require(req.channel, req.key)
        try:
            removed, position = await self.maps.remove(req.channel, req.key, req.idempotency_key)
        except WriteSuppressed as exc:
            return _suppressed(exc)
        result: Result = {"offset": position.offset, "epoch": position.epoch}
        if not removed:
            result |= {"suppressed": True, "suppress_reason": "key_not_found"}
        return result

    async def map_read_state(self, req: MapReadStateRequest) -> Result:
        # `asc` orders channels with scores, which tidings does not have: no effect,
        # as in Centrifugo for unordered channels.
        self.maps.channel(req.channel)
        limit = _page_limit(req.limit)
        try:
            if req.key:
                entry, position = await self.maps.store.read_key(req.channel, req.key)
                _check_revision(req, position)
                return _read([entry] if entry is not None else [], position)
            if not limit:
                position = await self.maps.store.position(req.channel)
                _check_revision(req, position)
                return _read([], position)
            page = await self.maps.store.read_state(req.channel, req.cursor, limit)
        except (InvalidKey, OutOfRange) as exc:
            raise ReplyError(ErrorCode.BAD_REQUEST, str(exc)) from None
        _check_revision(req, page.position)
        result = _read(page.entries, page.position)
        if page.cursor:
            result["cursor"] = page.cursor
        return result

    async def map_read_stream(self, req: MapReadStreamRequest) -> Result:
        self.maps.channel(req.channel)
        since = Position(req.since_offset, req.since_epoch)
        from_start = not req.since_offset and not req.since_epoch
        limit = _page_limit(req.limit)
        if req.reverse:
            return await self._read_stream_back(req, since, from_start, limit)
        try:
            changes, top = await self.maps.store.read_stream(
                req.channel, None if from_start else since, max(limit, 1)
            )
        except UnrecoverablePosition:
            raise ReplyError(ErrorCode.UNRECOVERABLE_POSITION) from None
        except OutOfRange as exc:
            raise ReplyError(ErrorCode.BAD_REQUEST, str(exc)) from None
        return _read(changes if limit else [], top)

    async def _read_stream_back(
        self, req: MapReadStreamRequest, since: Position, from_start: bool, limit: int
    ) -> Result:
        """`reverse`: newest first, from the top or (paging back) below `since`, as Centrifugo."""
        try:
            changes, top = await self.maps.store.read_stream_back(
                req.channel, 0 if from_start else since.offset, max(limit, 1)
            )
        except OutOfRange as exc:
            raise ReplyError(ErrorCode.BAD_REQUEST, str(exc)) from None
        if not from_start and since.epoch != top.epoch:
            raise ReplyError(ErrorCode.UNRECOVERABLE_POSITION)
        if not from_start and not since.offset:
            changes = []  # nothing is below offset 0
        return _read(changes if limit else [], top)

    async def map_stats(self, req: MapChannelRequest) -> Result:
        self.maps.channel(req.channel)
        num_keys = await self.maps.store.stats(req.channel)
        return {"num_keys": num_keys} if num_keys else {}  # zero omitted, as Centrifugo does

    async def map_clear(self, req: MapChannelRequest) -> Result:
        self.maps.channel(req.channel)
        await self.maps.store.clear(req.channel)
        return {}
