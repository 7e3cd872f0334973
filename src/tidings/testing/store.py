"""The conformance checks every `HistoryStore` implementation must pass.

Usage, from a test suite::

    await check_history_store(lambda clock: MemoryHistoryStore(clock=clock))
    await check_durable_store(lambda clock: SqliteHistoryStore(path, clock=clock))

The factory gets a `FakeClock` and must return a fresh, empty store that
measures publication age with it; ttl trimming is checked by advancing that
clock. Each check is also available alone in `HISTORY_STORE_CHECKS`, so a
test suite can report them one by one. Durable stores also pass
`DURABLE_STORE_CHECKS` (`check_durable_store`), whose factory opens the same
file each time so that a check can close the store and open it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from msgspec import Raw

from tidings.protocol.centrifuge.messages import ClientInfo, Publication
from tidings.store.base import (
    MAX_INT64,
    Ack,
    HistoryStore,
    OutOfRange,
    Position,
    UnrecoverablePosition,
)
from tidings.testing.clock import FakeClock

HistoryStoreFactory = Callable[[FakeClock], HistoryStore]
HistoryStoreCheck = Callable[[HistoryStoreFactory], Awaitable[None]]

#: Trim limits large enough not to matter in checks about something else.
BIG_SIZE = 1000
LONG_TTL = 3600.0


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _pub(n: int) -> Publication:
    return Publication(data=Raw(f'{{"n":{n}}}'.encode()))


def _offsets(pubs: list[Publication]) -> list[int]:
    return [p.offset for p in pubs]


async def _expect_unrecoverable(
    store: HistoryStore, channel: str, since: Position, why: str
) -> None:
    try:
        pubs, _ = await store.read(channel, since)
    except UnrecoverablePosition:
        return
    raise AssertionError(
        f"read since {since} ({why}) returned {_offsets(pubs)} instead of raising"
        " UnrecoverablePosition"
    )


@asynccontextmanager
async def _open(factory: HistoryStoreFactory) -> AsyncIterator[tuple[HistoryStore, FakeClock]]:
    clock = FakeClock()
    store = factory(clock)
    try:
        yield store, clock
    finally:
        await store.close()


async def _fill(store: HistoryStore, channel: str, count: int) -> list[Position]:
    return [await store.append(channel, _pub(n), BIG_SIZE, LONG_TTL) for n in range(count)]


# --- the checks ------------------------------------------------------------------


async def check_empty_stream(factory: HistoryStoreFactory) -> None:
    """An unknown channel is an empty stream at offset 0 with a stable epoch."""
    async with _open(factory) as (store, _):
        top = await store.position("empty")
        _expect(top.offset == 0, f"empty stream at offset {top.offset}, not 0")
        _expect(bool(top.epoch), "empty stream has no epoch")
        pubs, read_top = await store.read("empty")
        _expect(pubs == [], f"empty stream returned {_offsets(pubs)}")
        _expect(read_top == top, f"read says top {read_top}, position() said {top}")
        pubs, _ = await store.read("empty", since=Position(0, top.epoch))
        _expect(pubs == [], "read since 0 of an empty stream returned publications")
        await store.append("empty", _pub(1), BIG_SIZE, LONG_TTL)
        after = await store.position("empty")
        _expect(
            after.epoch == top.epoch,
            "the first append changed the epoch a subscriber was already given",
        )


async def check_offsets_increase_by_one(factory: HistoryStoreFactory) -> None:
    """Each append gets the next offset, per channel, and the stored pub carries it."""
    async with _open(factory) as (store, _):
        positions = await _fill(store, "a", 5)
        _expect(
            [p.offset for p in positions] == [1, 2, 3, 4, 5],
            f"offsets {[p.offset for p in positions]}, expected 1..5",
        )
        other = await store.append("b", _pub(0), BIG_SIZE, LONG_TTL)
        _expect(other.offset == 1, f"a second channel started at offset {other.offset}")
        pubs, top = await store.read("a")
        _expect(_offsets(pubs) == [1, 2, 3, 4, 5], f"read returned offsets {_offsets(pubs)}")
        _expect(
            [bytes(p.data) for p in pubs] == [bytes(_pub(n).data) for n in range(5)],
            "publications came back with other data or in another order",
        )
        _expect(top == positions[-1], f"top {top} is not the last append {positions[-1]}")
        _expect(await store.position("a") == top, "position() disagrees with read()")


async def check_publication_round_trip(factory: HistoryStoreFactory) -> None:
    """Data, info and tags come back as appended."""
    async with _open(factory) as (store, _):
        info = ClientInfo(user="u1", client="c1", conn_info=Raw(b'{"name":"x"}'))
        pub = Publication(data=Raw(b'{"text":"hi"}'), info=info, tags={"k": "v"})
        await store.append("rt", pub, BIG_SIZE, LONG_TTL)
        (got,), _ = await store.read("rt")
        _expect(bytes(got.data) == b'{"text":"hi"}', f"data came back as {bytes(got.data)!r}")
        _expect(got.info is not None and got.info.user == "u1", "info.user lost")
        _expect(got.info is not None and got.info.client == "c1", "info.client lost")
        _expect(got.tags == {"k": "v"}, f"tags came back as {got.tags}")
        _expect(got.offset == 1, f"offset came back as {got.offset}")


async def check_epoch_stable(factory: HistoryStoreFactory) -> None:
    """Appends, reads, trimming and remove keep the epoch."""
    async with _open(factory) as (store, _):
        positions = [await store.append("e", _pub(n), 2, LONG_TTL) for n in range(5)]
        epochs = {p.epoch for p in positions}
        _expect(len(epochs) == 1, f"epoch changed between appends: {epochs}")
        (epoch,) = epochs
        _, top = await store.read("e")
        _expect(top.epoch == epoch, "read reports another epoch")
        await store.remove("e")
        _expect((await store.position("e")).epoch == epoch, "remove changed the epoch")
        other = await store.append("f", _pub(0), BIG_SIZE, LONG_TTL)
        _expect(bool(other.epoch), "a stream has an empty epoch")


async def check_trim_by_size(factory: HistoryStoreFactory) -> None:
    """At most `size` publications are kept: the newest ones; offsets go on."""
    async with _open(factory) as (store, _):
        for n in range(5):
            top = await store.append("s", _pub(n), 3, LONG_TTL)
        pubs, read_top = await store.read("s")
        _expect(_offsets(pubs) == [3, 4, 5], f"size 3 kept offsets {_offsets(pubs)}")
        _expect(read_top == top and top.offset == 5, f"top is {read_top}, expected offset 5")


async def check_trim_by_ttl(factory: HistoryStoreFactory) -> None:
    """Publications older than `ttl` seconds are not returned; the offset stays."""
    async with _open(factory) as (store, clock):
        await store.append("t", _pub(0), BIG_SIZE, 10.0)
        clock.advance(5)
        await store.append("t", _pub(1), BIG_SIZE, 10.0)
        clock.advance(3)  # ages 8 and 3: both kept
        pubs, _ = await store.read("t")
        _expect(_offsets(pubs) == [1, 2], f"within ttl, read returned {_offsets(pubs)}")
        clock.advance(4)  # ages 12 and 7
        pubs, top = await store.read("t")
        _expect(_offsets(pubs) == [2], f"after the first expired, read returned {_offsets(pubs)}")
        _expect(top.offset == 2, f"expiry moved the top to {top.offset}")
        clock.advance(10)  # both expired
        pubs, top = await store.read("t")
        _expect(pubs == [], f"after both expired, read returned {_offsets(pubs)}")
        _expect(top.offset == 2, f"expiry moved the top to {top.offset}")


async def check_read_since(factory: HistoryStoreFactory) -> None:
    """Since a position: every publication after it, in order."""
    async with _open(factory) as (store, _):
        positions = await _fill(store, "r", 5)
        epoch = positions[0].epoch
        for since, expected in ((0, [1, 2, 3, 4, 5]), (2, [3, 4, 5]), (5, [])):
            pubs, top = await store.read("r", since=Position(since, epoch))
            _expect(
                _offsets(pubs) == expected,
                f"since offset {since}: got {_offsets(pubs)}, expected {expected}",
            )
            _expect(top.offset == 5, f"since offset {since}: top {top.offset}, expected 5")


async def check_read_since_unrecoverable(factory: HistoryStoreFactory) -> None:
    """A position whose successors are not all here raises, never returns a gap."""
    async with _open(factory) as (store, clock):
        positions = [await store.append("u", _pub(n), 3, 10.0) for n in range(5)]
        epoch = positions[0].epoch
        await _expect_unrecoverable(store, "u", Position(2, "not-" + epoch), "another epoch")
        await _expect_unrecoverable(store, "u", Position(6, epoch), "beyond the top")
        await _expect_unrecoverable(store, "u", Position(1, epoch), "offset 2 trimmed by size")
        await _expect_unrecoverable(store, "u", Position(0, epoch), "offsets 1-2 trimmed")
        pubs, _ = await store.read("u", since=Position(2, epoch))
        _expect(_offsets(pubs) == [3, 4, 5], f"since 2 (all kept) returned {_offsets(pubs)}")
        clock.advance(4)
        await store.append("u", _pub(5), 3, 10.0)  # size 3 now keeps offsets 4-6
        pubs, _ = await store.read("u", since=Position(3, epoch))
        _expect(_offsets(pubs) == [4, 5, 6], f"since 3 (all kept) returned {_offsets(pubs)}")
        clock.advance(8)  # offsets 4-5 are 12 s old, offset 6 is 8 s old
        await _expect_unrecoverable(store, "u", Position(3, epoch), "offsets 4-5 expired")
        pubs, _ = await store.read("u", since=Position(5, epoch))
        _expect(_offsets(pubs) == [6], f"since 5 after expiry returned {_offsets(pubs)}")


async def check_limit(factory: HistoryStoreFactory) -> None:
    """`limit` caps the count from the oldest; 0 returns only the position."""
    async with _open(factory) as (store, _):
        positions = await _fill(store, "l", 5)
        top = positions[-1]
        pubs, read_top = await store.read("l", limit=0)
        _expect(pubs == [], f"limit 0 returned {_offsets(pubs)}")
        _expect(read_top == top, f"limit 0 returned top {read_top}, expected {top}")
        pubs, _ = await store.read("l", limit=2)
        _expect(_offsets(pubs) == [1, 2], f"limit 2 returned {_offsets(pubs)}")
        pubs, _ = await store.read("l", since=Position(1, top.epoch), limit=2)
        _expect(_offsets(pubs) == [2, 3], f"since 1 limit 2 returned {_offsets(pubs)}")
        pubs, _ = await store.read("l", limit=-1)
        _expect(_offsets(pubs) == [1, 2, 3, 4, 5], f"limit -1 returned {_offsets(pubs)}")
        pubs, _ = await store.read("l", limit=50)
        _expect(_offsets(pubs) == [1, 2, 3, 4, 5], f"limit 50 returned {_offsets(pubs)}")
        pubs, read_top = await store.read("l", since=Position(2, top.epoch), limit=0)
        _expect(pubs == [] and read_top == top, "since 2 limit 0 returned publications")


async def check_reverse(factory: HistoryStoreFactory) -> None:
    """`reverse` returns newest first, and `limit` then keeps the newest."""
    async with _open(factory) as (store, _):
        positions = await _fill(store, "v", 5)
        epoch = positions[0].epoch
        pubs, _ = await store.read("v", reverse=True)
        _expect(_offsets(pubs) == [5, 4, 3, 2, 1], f"reverse returned {_offsets(pubs)}")
        pubs, _ = await store.read("v", reverse=True, limit=2)
        _expect(_offsets(pubs) == [5, 4], f"reverse limit 2 returned {_offsets(pubs)}")
        pubs, _ = await store.read("v", since=Position(2, epoch), reverse=True)
        _expect(_offsets(pubs) == [5, 4, 3], f"reverse since 2 returned {_offsets(pubs)}")


async def check_remove_keeps_offsets(factory: HistoryStoreFactory) -> None:
    """After `remove` the stream is empty but offsets continue in the same epoch."""
    async with _open(factory) as (store, _):
        positions = await _fill(store, "d", 3)
        epoch = positions[0].epoch
        await store.remove("d")
        pubs, top = await store.read("d")
        _expect(pubs == [], f"after remove, read returned {_offsets(pubs)}")
        _expect(top == Position(3, epoch), f"after remove the top is {top}, expected 3/{epoch}")
        nxt = await store.append("d", _pub(3), BIG_SIZE, LONG_TTL)
        _expect(nxt == Position(4, epoch), f"append after remove gave {nxt}, expected 4/{epoch}")
        pubs, _ = await store.read("d", since=Position(3, epoch))
        _expect(_offsets(pubs) == [4], f"since 3 after remove returned {_offsets(pubs)}")
        await _expect_unrecoverable(store, "d", Position(1, epoch), "offsets 2-3 removed")
        await store.remove("never-used")  # no error for an unknown channel


async def check_sweep_never_rewinds(factory: HistoryStoreFactory) -> None:
    """`sweep` drops expired data; a stream it forgets comes back with a new epoch."""
    async with _open(factory) as (store, clock):
        positions = await _fill(store, "w", 3)
        before = positions[-1]
        short_before = await store.append("w-short", _pub(0), BIG_SIZE, 1.0)
        clock.advance(LONG_TTL / 2)
        await store.sweep()
        pubs, top = await store.read("w")
        _expect(_offsets(pubs) == [1, 2, 3], f"sweep dropped live publications: {_offsets(pubs)}")
        _expect(top == before, f"sweep moved a live stream from {before} to {top}")
        pubs, short = await store.read("w-short")
        _expect(pubs == [], f"an expired publication survived sweep: {_offsets(pubs)}")
        if short.epoch == short_before.epoch:
            _expect(
                short.offset >= short_before.offset,
                f"sweep rewound {short_before} to {short} without changing the epoch",
            )
        else:
            await _expect_unrecoverable(store, "w-short", short_before, "the stream was swept")


async def check_idempotency_key(factory: HistoryStoreFactory) -> None:
    """The same key twice stores one publication and answers the same position."""
    async with _open(factory) as (store, _):
        first = await store.append("k", _pub(0), BIG_SIZE, LONG_TTL, idempotency_key="key-1")
        again = await store.append("k", _pub(1), BIG_SIZE, LONG_TTL, idempotency_key="key-1")
        _expect(again == first, f"a repeated key gave {again}, the first append gave {first}")
        pubs, top = await store.read("k")
        _expect(_offsets(pubs) == [1], f"a key stored twice left offsets {_offsets(pubs)}")
        _expect(bytes(pubs[0].data) == bytes(_pub(0).data), "the repeat replaced the first data")
        _expect(top == first, f"a repeated key moved the top to {top}")
        other = await store.append("k", _pub(2), BIG_SIZE, LONG_TTL, idempotency_key="key-2")
        _expect(other.offset == 2, f"a new key got offset {other.offset}, expected 2")
        plain = [await store.append("k", _pub(n), BIG_SIZE, LONG_TTL) for n in (3, 4)]
        _expect(
            [p.offset for p in plain] == [3, 4],
            f"appends without a key got {[p.offset for p in plain]}, expected [3, 4]",
        )
        late = await store.append("k", _pub(5), BIG_SIZE, LONG_TTL, idempotency_key="key-1")
        _expect(late == first, f"key-1 after other appends gave {late}, expected {first}")
        elsewhere = await store.append("k2", _pub(0), BIG_SIZE, LONG_TTL, idempotency_key="key-1")
        _expect(
            elsewhere.offset == 1 and len((await store.read("k2"))[0]) == 1,
            "an idempotency key of one channel suppressed a publication in another",
        )
        pubs, _ = await store.read("k")
        _expect(_offsets(pubs) == [1, 2, 3, 4], f"after repeats the stream is {_offsets(pubs)}")


async def check_find(factory: HistoryStoreFactory) -> None:
    """`find` returns the offset stored under a key, 0 for unknown keys and channels."""
    async with _open(factory) as (store, _):
        _expect(await store.find("nowhere", "key") == 0, "find in an unknown channel is not 0")
        await store.append("f", _pub(0), BIG_SIZE, LONG_TTL)
        second = await store.append("f", _pub(1), BIG_SIZE, LONG_TTL, idempotency_key="a")
        third = await store.append("f", _pub(2), BIG_SIZE, LONG_TTL, idempotency_key="b")
        found = (await store.find("f", "a"), await store.find("f", "b"))
        _expect(
            found == (second.offset, third.offset),
            f"find returned {found}, expected {(second.offset, third.offset)}",
        )
        _expect(await store.find("f", "c") == 0, "find of a key never stored is not 0")
        _expect(await store.find("other", "a") == 0, "find looked in another channel")
        await store.append("f", _pub(3), BIG_SIZE, LONG_TTL, idempotency_key="a")
        _expect(await store.find("f", "a") == second.offset, "a repeated key moved find()")


async def check_top_after_append(factory: HistoryStoreFactory) -> None:
    """`top` (no I/O) knows every completed append: never behind what append returned."""
    async with _open(factory) as (store, _):
        before = store.top("t")
        _expect(
            before is None or before.offset == 0,
            f"top of an unknown channel is {before}, expected None or offset 0",
        )
        for n in range(3):
            position = await store.append("t", _pub(n), BIG_SIZE, LONG_TTL)
            top = store.top("t")
            _expect(top == position, f"after append {position}, top() is {top}")
        await store.append("t", _pub(9), BIG_SIZE, LONG_TTL, idempotency_key="x")
        repeat = await store.append("t", _pub(9), BIG_SIZE, LONG_TTL, idempotency_key="x")
        top = store.top("t")
        _expect(
            top is not None and top.offset == 4 and top.epoch == repeat.epoch,
            f"a repeated key moved top() to {top}",
        )
        _, read_top = await store.read("t")
        _expect(store.top("t") == read_top, f"top() {store.top('t')} disagrees with {read_top}")


async def check_ack(factory: HistoryStoreFactory) -> None:
    """Acks per user and channel never move backwards; a new epoch replaces the old."""
    async with _open(factory) as (store, _):
        positions = await _fill(store, "a", 5)
        epoch = positions[0].epoch
        _expect(await store.acked("u1", "a") is None, "a user who never acked has an ack")
        ack = await store.ack("u1", "a", Position(3, epoch), "c1")
        _expect(
            (ack.offset, ack.epoch, ack.client) == (3, epoch, "c1"),
            f"ack returned {ack}, expected offset 3 of {epoch} by c1",
        )
        got = await store.acked("u1", "a")
        _expect(got is not None and got.offset == 3 and got.epoch == epoch, f"acked is {got}")
        back = await store.ack("u1", "a", Position(2, epoch), "c2")
        _expect(back.offset == 3, f"an ack of offset 2 after 3 moved the ack to {back.offset}")
        got = await store.acked("u1", "a")
        _expect(got is not None and got.offset == 3, f"an ack moved backwards to {got}")
        same = await store.ack("u1", "a", Position(3, epoch), "c3")
        _expect(same.offset == 3, f"acking the same offset again gave {same.offset}")
        fwd = await store.ack("u1", "a", Position(5, epoch), "c4")
        got = await store.acked("u1", "a")
        _expect(
            fwd.offset == 5 and got is not None and got.offset == 5 and got.client == "c4",
            f"an ack forward to 5 gave {fwd}, acked is {got}",
        )
        _expect(await store.acked("u2", "a") is None, "one user's ack shows for another")
        _expect(await store.acked("u1", "b") is None, "an ack shows in another channel")
        new = await store.ack("u1", "a", Position(1, "new-" + epoch), "c5")
        got = await store.acked("u1", "a")
        _expect(
            new.offset == 1 and got is not None and (got.offset, got.epoch) == (1, "new-" + epoch),
            f"an ack in a new epoch did not replace the old one: returned {new}, acked {got}",
        )


async def check_acks(factory: HistoryStoreFactory) -> None:
    """`acks(channel, offset)` lists the users whose ack covers offset, in the current epoch."""
    async with _open(factory) as (store, _):
        positions = await _fill(store, "c", 6)
        epoch = positions[0].epoch
        await _fill(store, "other", 6)
        await store.ack("u1", "c", Position(3, epoch), "c1")
        await store.ack("u2", "c", Position(5, epoch), "c2")
        await store.ack("u3", "c", Position(1, epoch), "c3")
        await store.ack("u4", "c", Position(6, "stale-" + epoch), "c4")
        await store.ack("u5", "other", Position(6, (await store.position("other")).epoch), "c5")

        def users(found: list[tuple[str, Ack]]) -> list[str]:
            return sorted(user for user, _ in found)

        for offset, expected in ((1, ["u1", "u2", "u3"]), (3, ["u1", "u2"]), (5, ["u2"])):
            found = await store.acks("c", offset)
            _expect(
                users(found) == expected,
                f"acks of offset {offset}: {users(found)}, expected {expected}",
            )
        _expect(await store.acks("c", 6) == [], "acks of offset 6 lists users (stale epoch?)")
        found = await store.acks("c", 3)
        by_user = dict(found)
        _expect(
            by_user["u2"].offset == 5 and by_user["u2"].client == "c2",
            f"acks returned {by_user['u2']} for u2",
        )
        _expect(len(await store.acks("c", 1, limit=2)) == 2, "acks ignored its limit")
        _expect(await store.acks("nowhere", 1) == [], "acks of an unknown channel lists users")


async def check_reads_create_no_stream(factory: HistoryStoreFactory) -> None:
    """Looking at never-published channels leaves no stream behind; an append makes one."""
    async with _open(factory) as (store, _):
        await _fill(store, "kept", 2)
        before = await store.num_streams()
        _expect(before == 1, f"one channel published, num_streams() says {before}")
        for n in range(50):
            name = f"looked-at-{n}"
            top = await store.position(name)
            await store.read(name)
            await store.read(name, since=Position(0, top.epoch), limit=0)
            await store.read(name, reverse=True, limit=10)
            await store.find(name, "key")
            await store.acked("u1", name)
            await store.acks(name, 1)
            await store.remove(name)
            _expect(store.top(name) in (None, Position(0, top.epoch)), f"top() of {name} moved")
        after = await store.num_streams()
        _expect(after == before, f"reads of 50 unknown channels left {after - before} streams")
        await store.append("fresh", _pub(0), BIG_SIZE, LONG_TTL)
        _expect(await store.num_streams() == before + 1, "an append created no stream")


#: Integers no store may take: below 0 or beyond a signed 64-bit integer.
HOSTILE_INTEGERS = (-1, -(2**63), -(2**64), MAX_INT64 + 1, 2**64, 10**40)


async def _expect_out_of_range(call: Awaitable[object], what: str) -> None:
    try:
        await call
    except OutOfRange:
        return
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}, not OutOfRange") from exc
    raise AssertionError(f"{what} was accepted instead of raising OutOfRange")


async def check_bad_integers_refused(factory: HistoryStoreFactory) -> None:
    """Offsets, limits and sizes outside 0 <= n < 2**63 raise `OutOfRange`, changing nothing."""
    async with _open(factory) as (store, _):
        positions = await _fill(store, "n", 3)
        epoch = positions[-1].epoch
        await store.ack("u1", "n", Position(2, epoch), "c1")
        for bad in HOSTILE_INTEGERS:
            await _expect_out_of_range(store.read("n", Position(bad, epoch)), f"since {bad}")
            await _expect_out_of_range(
                store.ack("u1", "n", Position(bad, epoch), "c"), f"ack {bad}"
            )
            await _expect_out_of_range(store.acks("n", bad), f"acks of offset {bad}")
            await _expect_out_of_range(store.append("n", _pub(9), bad, LONG_TTL), f"size {bad}")
            if bad != -1:  # -1 is the "everything" limit
                await _expect_out_of_range(store.read("n", limit=bad), f"limit {bad}")
        pubs, top = await store.read("n")
        _expect(_offsets(pubs) == [1, 2, 3] and top == positions[-1], "a refused call wrote")
        ack = await store.acked("u1", "n")
        _expect(ack is not None and ack.offset == 2, f"a refused ack changed the ack to {ack}")
        edge, _ = await store.read("n", Position(0, epoch), limit=MAX_INT64)
        _expect(_offsets(edge) == [1, 2, 3], "the largest valid limit was not accepted")


async def check_failed_write_isolated(factory: HistoryStoreFactory) -> None:
    """Hostile writes mixed into concurrent appends never fail or change the others."""
    async with _open(factory) as (store, _):
        epoch = (await store.append("iso", _pub(0), BIG_SIZE, LONG_TTL)).epoch
        good: list[Awaitable[Position]] = []
        hostile: list[Awaitable[object]] = []
        for n in range(40):
            good.append(store.append("iso", _pub(n + 1), BIG_SIZE, LONG_TTL))
            if n % 8 == 0:
                hostile.append(store.ack("u1", "iso", Position(-(2**64), epoch), "c"))
                hostile.append(store.append("bad\udcff", _pub(n), BIG_SIZE, LONG_TTL))
                hostile.append(store.ack("bad\ud800", "iso", Position(1, epoch), "c"))
        results = await asyncio.gather(*good, *hostile, return_exceptions=True)
        failed = [r for r in results[: len(good)] if not isinstance(r, Position)]
        _expect(
            not failed, f"{len(failed)} good appends failed beside hostile writes: {failed[:1]}"
        )
        got = sorted(r.offset for r in results[: len(good)] if isinstance(r, Position))
        _expect(got == list(range(2, 42)), f"good appends got offsets {got}")
        pubs, top = await store.read("iso")
        _expect(_offsets(pubs) == list(range(1, 42)) and top.offset == 41, "the stream has gaps")


async def check_durable_reopen(factory: HistoryStoreFactory) -> None:
    """For durable stores: `factory` opens the same place each call (empty the first time).

    Closing and reopening keeps the epoch, the offsets (they continue), the
    publications, idempotency keys and acks.
    """
    async with _open(factory) as (store, _):
        _expect(store.durable, f"{type(store).__name__} does not say it is durable")
        positions = await _fill(store, "d", 3)
        keyed = await store.append("d", _pub(3), BIG_SIZE, LONG_TTL, idempotency_key="k")
        epoch = positions[0].epoch
        await store.ack("u1", "d", Position(2, epoch), "c1")
        other = await store.append("o", _pub(0), BIG_SIZE, LONG_TTL)
    async with _open(factory) as (store, _):
        top = await store.position("d")
        _expect(top == keyed, f"after reopening the top is {top}, expected {keyed}")
        pubs, _ = await store.read("d", since=Position(0, epoch))
        _expect(_offsets(pubs) == [1, 2, 3, 4], f"after reopening read gave {_offsets(pubs)}")
        _expect(
            [bytes(p.data) for p in pubs] == [bytes(_pub(n).data) for n in range(4)],
            "publications came back with other data after reopening",
        )
        _expect(await store.find("d", "k") == 4, "an idempotency key was lost on reopening")
        again = await store.append("d", _pub(9), BIG_SIZE, LONG_TTL, idempotency_key="k")
        _expect(again == keyed, f"a key repeated after reopening gave {again}")
        nxt = await store.append("d", _pub(4), BIG_SIZE, LONG_TTL)
        _expect(nxt == Position(5, epoch), f"append after reopening gave {nxt}, expected 5")
        ack = await store.acked("u1", "d")
        _expect(
            ack is not None and (ack.offset, ack.epoch, ack.client) == (2, epoch, "c1"),
            f"after reopening the ack is {ack}",
        )
        _expect(
            [u for u, _ in await store.acks("d", 2)] == ["u1"], "acks() lost the ack on reopening"
        )
        _expect(await store.position("o") == other, "a second channel lost its position")


HISTORY_STORE_CHECKS: tuple[HistoryStoreCheck, ...] = (
    check_empty_stream,
    check_offsets_increase_by_one,
    check_publication_round_trip,
    check_epoch_stable,
    check_trim_by_size,
    check_trim_by_ttl,
    check_read_since,
    check_read_since_unrecoverable,
    check_limit,
    check_reverse,
    check_remove_keeps_offsets,
    check_sweep_never_rewinds,
    check_idempotency_key,
    check_find,
    check_top_after_append,
    check_ack,
    check_acks,
    check_reads_create_no_stream,
    check_bad_integers_refused,
    check_failed_write_isolated,
)

#: Checks only for stores with `durable = True`; their factory must open the same
#: place (file, database) on every call, empty on the first.
DURABLE_STORE_CHECKS: tuple[HistoryStoreCheck, ...] = (check_durable_reopen,)


async def check_history_store(factory: HistoryStoreFactory) -> None:
    """Run every check in `HISTORY_STORE_CHECKS`; raises AssertionError on the first failure."""
    for check in HISTORY_STORE_CHECKS:
        await check(factory)


async def check_durable_store(reopen: HistoryStoreFactory) -> None:
    """Run every check in `DURABLE_STORE_CHECKS` with a factory that reopens one place."""
    for check in DURABLE_STORE_CHECKS:
        await check(reopen)
