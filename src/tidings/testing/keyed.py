"""The conformance checks every `KeyedStateStore` implementation must pass.

Usage, from a test suite::

    await check_keyed_state_store(lambda clock: MemoryKeyedStateStore(clock=clock))

The factory takes a `FakeClock` (key and stream TTLs are measured with it)
and returns a fresh, empty store. Each check is also available alone in
`KEYED_STATE_STORE_CHECKS`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from tidings.store.base import OutOfRange, Position, UnrecoverablePosition
from tidings.store.keyed import (
    InvalidKey,
    KeyedEntry,
    KeyedStateStore,
    MapLimits,
    WriteCondition,
    WriteSuppressed,
)
from tidings.testing.clock import FakeClock

KeyedStoreFactory = Callable[[FakeClock], KeyedStateStore]
KeyedStoreCheck = Callable[[KeyedStoreFactory], Awaitable[None]]

STREAM = MapLimits(stream_size=100, stream_ttl=60.0)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


@asynccontextmanager
async def _open(factory: KeyedStoreFactory) -> AsyncIterator[tuple[KeyedStateStore, FakeClock]]:
    clock = FakeClock()
    store = factory(clock)
    try:
        yield store, clock
    finally:
        await store.close()


async def _all_state(store: KeyedStateStore, channel: str, limit: int) -> dict[str, bytes]:
    state: dict[str, bytes] = {}
    cursor = ""
    for _ in range(10_000):
        page = await store.read_state(channel, cursor, limit)
        for entry in page.entries:
            _expect(entry.key not in state, f"key {entry.key!r} in two pages")
            state[entry.key] = entry.data
        cursor = page.cursor
        if not cursor:
            return state
    raise AssertionError("state pages never end")


def _apply(state: dict[str, bytes], changes: list[KeyedEntry]) -> None:
    for change in changes:
        if change.removed:
            state.pop(change.key, None)
        else:
            state[change.key] = change.data


async def check_empty_channel(factory: KeyedStoreFactory) -> None:
    """A channel nobody wrote has no keys, position (0, ""), and reading creates nothing."""
    async with _open(factory) as (store, _):
        page = await store.read_state("nothing")
        _expect(page.entries == [] and page.cursor == "", f"empty channel has state {page}")
        _expect(await store.position("nothing") == Position(0, ""), "empty channel has a top")
        changes, top = await store.read_stream("nothing", Position(0, ""))
        _expect(changes == [] and top == Position(0, ""), f"empty stream has {changes}, {top}")
        _expect(await store.stats("nothing") == 0, "empty channel counts keys")
        _expect(await store.position("nothing") == Position(0, ""), "a read created the channel")


async def check_publish_and_read(factory: KeyedStoreFactory) -> None:
    """Each change takes the next offset; the state keeps the latest value of each key."""
    async with _open(factory) as (store, _):
        first, pos1 = await store.publish("c", "a", b"1", STREAM)
        second, pos2 = await store.publish("c", "b", b"2", STREAM)
        third, pos3 = await store.publish("c", "a", b"3", STREAM)
        _expect(
            [first.offset, second.offset, third.offset] == [1, 2, 3],
            f"offsets {first.offset}, {second.offset}, {third.offset}",
        )
        _expect(pos1.epoch == pos2.epoch == pos3.epoch != "", "epoch changed between writes")
        _expect(pos3 == await store.position("c"), "position is not the last write")
        page = await store.read_state("c")
        got = {e.key: (e.data, e.offset) for e in page.entries}
        _expect(got == {"a": (b"3", 3), "b": (b"2", 2)}, f"state {got}")
        _expect(page.position == pos3, f"state page position {page.position}")
        _expect(await store.stats("c") == 2, "stats is not the number of keys")
        _expect(await store.read_state("other") == await store.read_state("other"), "isolation")
        _expect((await store.read_state("other")).entries == [], "channels share state")


async def check_remove_tombstone(factory: KeyedStoreFactory) -> None:
    """A removal is a change in the stream (a tombstone) and leaves the state."""
    async with _open(factory) as (store, _):
        _, start = await store.publish("c", "a", b"1", STREAM)
        removal, top = await store.remove("c", "a", STREAM)
        _expect(removal is not None and removal.removed, "removal not returned")
        _expect(removal is not None and removal.offset == 2, "removal offset is not the next")
        _expect((await store.read_state("c")).entries == [], "removed key still in state")
        changes, _ = await store.read_stream("c", start)
        _expect(
            [(c.key, c.removed, c.offset) for c in changes] == [("a", True, 2)],
            f"stream after removal {changes}",
        )
        again, same = await store.remove("c", "a", STREAM)
        _expect(again is None and same == top, "removing an absent key changed something")
        never, _ = await store.remove("unwritten", "a", STREAM)
        _expect(never is None, "removing in an unwritten channel returned a change")


async def check_snapshot_plus_stream(factory: KeyedStoreFactory) -> None:
    """State pages read at P plus the stream since P give the state, despite writes between."""
    async with _open(factory) as (store, _):
        for i in range(25):
            await store.publish("c", f"k{i:02d}", b"v%d" % i, STREAM)
        first = await store.read_state("c", "", 10)
        state = {e.key: e.data for e in first.entries}
        # Writes while the pages are read: before and after the cursor.
        await store.publish("c", "k00", b"new", STREAM)
        await store.remove("c", "k20", STREAM)
        await store.publish("c", "k99", b"late", STREAM)
        cursor = first.cursor
        while cursor:
            page = await store.read_state("c", cursor, 10)
            state.update({e.key: e.data for e in page.entries})
            cursor = page.cursor
        changes, top = await store.read_stream("c", first.position)
        _apply(state, changes)
        expected = {f"k{i:02d}": b"v%d" % i for i in range(25) if i != 20}
        expected |= {"k00": b"new", "k99": b"late"}
        _expect(state == expected, f"snapshot + stream gave {state}")
        _expect(top == await store.position("c"), "stream top is not the position")


async def check_pagination(factory: KeyedStoreFactory) -> None:
    """Pages come in key order, never repeat a key, and end with an empty cursor."""
    async with _open(factory) as (store, _):
        keys = ["b", "a", "é", "z z", "A", "0", "ключ", "a:b", "\u2603"]
        for key in keys:
            await store.publish("c", key, key.encode(), STREAM)
        seen: list[str] = []
        cursor = ""
        while True:
            page = await store.read_state("c", cursor, 2)
            _expect(len(page.entries) <= 2, f"page of {len(page.entries)} > limit 2")
            seen += [e.key for e in page.entries]
            cursor = page.cursor
            if not cursor:
                break
        order = sorted(keys, key=lambda k: k.encode())
        _expect(seen == order, f"pages gave {seen}, expected {order}")
        everything = await _all_state(store, "c", 1000)
        _expect(everything == {k: k.encode() for k in keys}, "one big page differs")


async def check_recovery(factory: KeyedStoreFactory) -> None:
    """The stream since a position has every change after it, in order, removals included."""
    async with _open(factory) as (store, _):
        _, mark = await store.publish("c", "a", b"1", STREAM)
        await store.publish("c", "b", b"2", STREAM)
        await store.remove("c", "a", STREAM)
        changes, top = await store.read_stream("c", mark)
        _expect([c.offset for c in changes] == [2, 3], f"recovered offsets {changes}")
        page, _ = await store.read_stream("c", mark, 1)
        _expect([c.offset for c in page] == [2], "limit not honoured")
        none, same = await store.read_stream("c", top)
        _expect(none == [] and same == top, "reading from the top returned changes")
        from_start, _ = await store.read_stream("c", Position(0, ""))
        _expect([c.offset for c in from_start] == [1, 2, 3], "reading from the start")


async def check_unrecoverable(factory: KeyedStoreFactory) -> None:
    """Trimmed changes, another epoch or a position ahead raise UnrecoverablePosition."""
    async with _open(factory) as (store, _):
        small = MapLimits(stream_size=2, stream_ttl=60.0)
        _, mark = await store.publish("c", "a", b"1", small)
        for i in range(3):
            await store.publish("c", "a", b"%d" % i, small)
        for since, why in (
            (mark, "trimmed changes"),
            (Position(mark.offset, "other-epoch"), "another epoch"),
            (Position(1000, mark.epoch), "a position ahead"),
        ):
            try:
                await store.read_stream("c", since)
            except UnrecoverablePosition:
                continue
            raise AssertionError(f"reading after {why} did not raise UnrecoverablePosition")
        nostream = MapLimits()
        _, old = await store.publish("d", "a", b"1", nostream)
        await store.publish("d", "a", b"2", nostream)
        try:
            await store.read_stream("d", old)
        except UnrecoverablePosition:
            pass
        else:
            raise AssertionError("a channel without stream recovered a change")


async def check_stream_ttl(factory: KeyedStoreFactory) -> None:
    """A change older than the stream TTL is never returned; the gap is unrecoverable."""
    async with _open(factory) as (store, clock):
        limits = MapLimits(stream_size=100, stream_ttl=10.0)
        _, mark = await store.publish("c", "a", b"1", limits)
        await store.publish("c", "a", b"2", limits)
        clock.advance(5)
        await store.publish("c", "b", b"3", limits)
        clock.advance(6)
        try:
            await store.read_stream("c", mark)
        except UnrecoverablePosition:
            pass
        else:
            raise AssertionError("a change older than the stream TTL was recovered")
        kept, _ = await store.read_stream("c", Position(2, mark.epoch))
        _expect([c.offset for c in kept] == [3], f"fresh change not kept: {kept}")


async def check_key_ttl(factory: KeyedStoreFactory) -> None:
    """An expired key leaves reads; `expire` turns it into a removal in the stream."""
    async with _open(factory) as (store, clock):
        limits = MapLimits(key_ttl=5.0, stream_size=100, stream_ttl=60.0)
        await store.publish("c", "short", b"1", limits)
        _, mark = await store.publish("c", "long", b"2", STREAM)
        clock.advance(6)
        keys = [e.key for e in (await store.read_state("c")).entries]
        _expect(keys == ["long"], f"expired key still read: {keys}")
        _expect(await store.stats("c") == 1, "expired key still counted")
        removals = await store.expire("c", limits)
        _expect(
            [(r.key, r.removed, r.offset) for r in removals] == [("short", True, 3)],
            f"expire returned {removals}",
        )
        changes, _ = await store.read_stream("c", mark)
        _expect([(c.key, c.removed) for c in changes] == [("short", True)], "no tombstone")
        _expect(await store.expire("c", limits) == [], "a key expired twice")
        gone, _ = await store.remove("c", "short", limits)
        _expect(gone is None, "an expired key was removed again")


async def check_clear(factory: KeyedStoreFactory) -> None:
    """`clear` forgets state and stream; the next write starts another epoch at offset 1."""
    async with _open(factory) as (store, _):
        _, before = await store.publish("c", "a", b"1", STREAM)
        await store.clear("c")
        _expect((await store.read_state("c")).entries == [], "clear kept keys")
        entry, after = await store.publish("c", "b", b"2", STREAM)
        _expect(entry.offset == 1 and after.epoch != before.epoch, f"after clear: {after}")


async def check_refusals(factory: KeyedStoreFactory) -> None:
    """Bad keys, limits and positions are refused before anything is written."""
    async with _open(factory) as (store, _):
        for key in ("", "x" * 2000, "\udcff"):
            try:
                await store.publish("c", key, b"1", STREAM)
            except InvalidKey:
                continue
            raise AssertionError(f"key {key[:10]!r} accepted")
        for limits in (
            MapLimits(key_ttl=2.0**70),
            MapLimits(stream_size=2**64, stream_ttl=1.0),
            MapLimits(stream_size=-1),
        ):
            try:
                await store.publish("c", "a", b"1", limits)
            except OutOfRange:
                continue
            raise AssertionError(f"limits {limits} accepted")
        for call in (
            store.read_state("c", "", 0),
            store.read_state("c", "", 10**9),
            store.read_stream("c", Position(2**64, ""), 10),
        ):
            try:
                await call
            except OutOfRange:
                continue
            raise AssertionError("out of range read accepted")
        _expect(await store.position("c") == Position(0, ""), "a refused write wrote")


async def check_binary_data(factory: KeyedStoreFactory) -> None:
    """Data is kept byte for byte, whatever the bytes."""
    async with _open(factory) as (store, _):
        blob = bytes(range(256)) * 4
        await store.publish("c", "bin", blob, STREAM)
        page = await store.read_state("c")
        _expect(page.entries[0].data == blob, "data changed in the state")
        changes, _ = await store.read_stream("c", Position(0, ""))
        _expect(changes[0].data == blob, "data changed in the stream")


async def _suppressed(write: Awaitable[object]) -> WriteSuppressed:
    try:
        await write
    except WriteSuppressed as exc:
        return exc
    raise AssertionError("the write was not suppressed")


async def check_idempotency(factory: KeyedStoreFactory) -> None:
    """A repeated idempotency key changes nothing and answers the first write's position."""
    async with _open(factory) as (store, clock):
        once = WriteCondition(idempotency_key="op-1")
        _, first = await store.publish("c", "a", b"1", STREAM, once)
        again = await _suppressed(store.publish("c", "a", b"2", STREAM, once))
        _expect(again.reason == "idempotency", f"reason {again.reason!r}")
        _expect(again.position == first, f"repeat answered {again.position}, not {first}")
        _expect(await _all_state(store, "c", 10) == {"a": b"1"}, "a repeat changed the state")
        _, top = await store.read_stream("c", Position(0, ""))
        _expect(top == first, "a repeat appended to the stream")
        _, removed_at = await store.remove("c", "a", STREAM, idempotency_key="rm-1")
        await store.publish("c", "a", b"3", STREAM)
        repeat = await _suppressed(store.remove("c", "a", STREAM, idempotency_key="rm-1"))
        _expect(repeat.position == removed_at, "a repeated removal did not answer the first")
        _expect(await _all_state(store, "c", 10) == {"a": b"3"}, "a repeated removal removed")
        clock.advance(301)
        await store.publish("c", "a", b"4", STREAM, once)
        _expect(await _all_state(store, "c", 10) == {"a": b"4"}, "an expired key still repeats")


async def check_versions(factory: KeyedStoreFactory) -> None:
    """A set not above the key's version (same version epoch) changes nothing."""
    async with _open(factory) as (store, _):
        await store.publish("c", "k", b"v5", STREAM, WriteCondition(version=5))
        for version, epoch in ((5, ""), (4, ""), (3, "")):
            old = await _suppressed(
                store.publish(
                    "c", "k", b"old", STREAM, WriteCondition(version=version, version_epoch=epoch)
                )
            )
            _expect(old.reason == "version", f"reason {old.reason!r}")
        await store.publish("c", "k", b"v6", STREAM, WriteCondition(version=6))
        # Another version epoch starts the comparison again; no version keeps the stored one.
        await store.publish("c", "k", b"e2", STREAM, WriteCondition(version=1, version_epoch="e2"))
        await store.publish("c", "k", b"plain", STREAM)
        await _suppressed(store.publish("c", "k", b"x", STREAM, WriteCondition(version=1)))
        big = 2**63 - 1
        await store.publish("c", "k", b"big", STREAM, WriteCondition(version=big))
        await _suppressed(store.publish("c", "k", b"x", STREAM, WriteCondition(version=big - 1)))
        _expect(await _all_state(store, "c", 10) == {"k": b"big"}, "versions not honoured")
        # A removed key forgets its version.
        await store.remove("c", "k", STREAM)
        await store.publish("c", "k", b"again", STREAM, WriteCondition(version=1))
        try:
            await store.publish("c", "x", b"1", MapLimits(), WriteCondition(version=1))
        except OutOfRange:
            pass
        else:
            raise AssertionError("a version without a stream was accepted")


async def check_key_modes(factory: KeyedStoreFactory) -> None:
    """if_new writes only an absent key (optionally refreshing its TTL), if_exists a present one."""
    async with _open(factory) as (store, clock):
        ttl = MapLimits(key_ttl=10.0, stream_size=100, stream_ttl=60.0)
        absent = await _suppressed(
            store.publish("c", "k", b"1", ttl, WriteCondition(key_mode="if_exists"))
        )
        _expect(absent.reason == "key_not_found", f"reason {absent.reason!r}")
        await store.publish("c", "k", b"1", ttl, WriteCondition(key_mode="if_new"))
        present = await _suppressed(
            store.publish("c", "k", b"2", ttl, WriteCondition(key_mode="if_new", refresh_ttl=True))
        )
        _expect(present.reason == "key_exists", f"reason {present.reason!r}")
        clock.advance(8)
        await _suppressed(
            store.publish("c", "k", b"2", ttl, WriteCondition(key_mode="if_new", refresh_ttl=True))
        )
        clock.advance(8)  # 16s after the write, 8s after the refresh: still alive
        _expect(await _all_state(store, "c", 10) == {"k": b"1"}, "refresh_ttl did not refresh")
        await store.publish("c", "k", b"3", ttl, WriteCondition(key_mode="if_exists"))
        _expect(await _all_state(store, "c", 10) == {"k": b"3"}, "if_exists did not write")
        _, top = await store.read_stream("c", Position(0, ""))
        _expect(top.offset == 2, f"suppressed writes took offsets: top {top}")


async def check_tags_and_info(factory: KeyedStoreFactory) -> None:
    """Tags and writer info are kept with the key and the change; a removal keeps the tags."""
    async with _open(factory) as (store, _):
        cond = WriteCondition(tags={"team": "red"}, info=b'{"user":"u"}')
        await store.publish("c", "k", b"1", STREAM, cond)
        page = await store.read_state("c")
        _expect(page.entries[0].tags == {"team": "red"}, f"state tags {page.entries[0].tags}")
        _expect(page.entries[0].info == b'{"user":"u"}', "state lost the info")
        removal, _ = await store.remove("c", "k", STREAM)
        _expect(removal is not None and removal.tags == {"team": "red"}, "removal lost the tags")
        changes, _ = await store.read_stream("c", Position(0, ""))
        _expect(changes[0].tags == {"team": "red"} and changes[0].info == b'{"user":"u"}', "stream")
        _expect(changes[1].removed and changes[1].tags == {"team": "red"}, "removal in stream")


async def check_read_key(factory: KeyedStoreFactory) -> None:
    """One key is read alone, with the top; absent, removed and expired keys read as None."""
    async with _open(factory) as (store, clock):
        _expect(await store.read_key("c", "k") == (None, Position(0, "")), "absent channel")
        ttl = MapLimits(key_ttl=5.0, stream_size=100, stream_ttl=60.0)
        await store.publish("c", "k", b"1", STREAM, WriteCondition(tags={"a": "b"}))
        _, top = await store.publish("c", "short", b"2", ttl)
        entry, position = await store.read_key("c", "k")
        _expect(position == top, f"read_key top {position}, not {top}")
        _expect(entry is not None and entry.data == b"1" and entry.offset == 1, f"{entry}")
        _expect(entry is not None and entry.tags == {"a": "b"}, "read_key lost the tags")
        await store.remove("c", "k", STREAM)
        _expect((await store.read_key("c", "k"))[0] is None, "a removed key is read")
        clock.advance(6)
        _expect((await store.read_key("c", "short"))[0] is None, "an expired key is read")


async def check_read_stream_back(factory: KeyedStoreFactory) -> None:
    """Newest first, below an offset when given, none older than the stream keeps."""
    async with _open(factory) as (store, clock):
        _expect(await store.read_stream_back("c", 0) == ([], Position(0, "")), "empty channel")
        for i in range(1, 6):
            await store.publish("c", f"k{i}", b"%d" % i, STREAM)
        await store.remove("c", "k1", STREAM)
        changes, top = await store.read_stream_back("c", 0, 3)
        _expect([c.offset for c in changes] == [6, 5, 4], f"newest first: {changes}")
        _expect(changes[0].removed and top.offset == 6, "the removal comes first")
        older, _ = await store.read_stream_back("c", 4, 10)
        _expect([c.offset for c in older] == [3, 2, 1], f"below 4: {older}")
        clock.advance(61)  # older than the stream TTL: gone
        _expect((await store.read_stream_back("c", 0, 10))[0] == [], "expired changes read")


KEYED_STATE_STORE_CHECKS: tuple[KeyedStoreCheck, ...] = (
    check_empty_channel,
    check_publish_and_read,
    check_remove_tombstone,
    check_snapshot_plus_stream,
    check_pagination,
    check_recovery,
    check_unrecoverable,
    check_stream_ttl,
    check_key_ttl,
    check_clear,
    check_refusals,
    check_binary_data,
    check_idempotency,
    check_versions,
    check_key_modes,
    check_tags_and_info,
    check_read_key,
    check_read_stream_back,
)


async def check_keyed_state_store(factory: KeyedStoreFactory) -> None:
    """Run every check of `KEYED_STATE_STORE_CHECKS` against `factory`."""
    for check in KEYED_STATE_STORE_CHECKS:
        await check(factory)
