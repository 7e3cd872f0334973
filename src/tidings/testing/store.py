"""The conformance checks every `HistoryStore` implementation must pass.

Usage, from a test suite::

    await check_history_store(lambda clock: MemoryHistoryStore(clock=clock))

The factory gets a `FakeClock` and must return a fresh, empty store that
measures publication age with it; ttl trimming is checked by advancing that
clock. Each check is also available alone in `HISTORY_STORE_CHECKS`, so a
test suite can report them one by one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from msgspec import Raw

from tidings.protocol.centrifuge.messages import ClientInfo, Publication
from tidings.store.base import HistoryStore, Position, UnrecoverablePosition
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
)


async def check_history_store(factory: HistoryStoreFactory) -> None:
    """Run every check in `HISTORY_STORE_CHECKS`; raises AssertionError on the first failure."""
    for check in HISTORY_STORE_CHECKS:
        await check(factory)
