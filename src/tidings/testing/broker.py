"""The conformance checks every `Broker` implementation must pass.

Usage, from a test suite::

    async def pair() -> tuple[Broker, Broker]:
        hub = MemoryBrokerHub()
        return MemoryBroker(hub), MemoryBroker(hub)

    await check_broker(pair)

The factory returns two brokers that are not started yet, on the same
fresh engine: two nodes of one cluster. Each check starts them with a
`RecordingPort` and closes them. Each check is also available alone in
`BROKER_CHECKS`. Absence is checked with a witness: the other node
subscribes to the same channel and hears the publication, then the
checked node must not have heard it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

from msgspec import Raw

from tidings.broker.base import Broker
from tidings.protocol.centrifuge.messages import ClientInfo, Publication
from tidings.store.base import Position

BrokerPairFactory = Callable[[], Awaitable[tuple[Broker, Broker]]]
BrokerCheck = Callable[[BrokerPairFactory], Awaitable[None]]

#: Seconds to wait for something that must arrive.
ARRIVAL_TIMEOUT = 5.0
#: Seconds allowed for a message that must *not* arrive to show up anyway.
SETTLE = 0.05
SIZE, TTL = 1000, 300.0


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _pub(n: int) -> Publication:
    return Publication(data=Raw(f'{{"n":{n}}}'.encode()))


def _heard(port: RecordingPort, channel: str, count: int) -> bool:
    return len(port.of(channel)) >= count


def _n(pub: Publication) -> int:
    return int(bytes(pub.data)[5:-1])


class RecordingPort:
    """A `BrokerPort` that records every callback, and waits for what it expects."""

    def __init__(self) -> None:
        self.publications: list[tuple[str, Publication, Position]] = []
        self.joins: list[tuple[str, ClientInfo]] = []
        self.leaves: list[tuple[str, ClientInfo]] = []
        self.controls: list[bytes] = []
        #: (channel, offset) of the publications delivered with the `delta` flag.
        self.deltas: list[tuple[str, int]] = []
        self.lost: list[str] = []
        self.resubscribed: list[list[str]] = []
        self._changed = asyncio.Event()

    def _note(self) -> None:
        self._changed.set()

    def on_publication(
        self, channel: str, pub: Publication, position: Position, delta: bool = False
    ) -> None:
        self.publications.append((channel, pub, position))
        if delta:
            self.deltas.append((channel, pub.offset))
        self._note()

    def on_join(self, channel: str, info: ClientInfo) -> None:
        self.joins.append((channel, info))
        self._note()

    def on_leave(self, channel: str, info: ClientInfo) -> None:
        self.leaves.append((channel, info))
        self._note()

    def on_control(self, data: bytes) -> None:
        self.controls.append(data)
        self._note()

    def on_lost_connection(self, error: str) -> None:
        self.lost.append(error)
        self._note()

    def on_resubscribed(self, channels: list[str]) -> None:
        self.resubscribed.append(channels)
        self._note()

    def of(self, channel: str) -> list[Publication]:
        return [pub for name, pub, _ in self.publications if name == channel]

    async def wait(self, condition: Callable[[], bool], what: str) -> None:
        """Wait until `condition()` holds; AssertionError naming `what` after the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ARRIVAL_TIMEOUT
        while not condition():
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)


@asynccontextmanager
async def _nodes(
    factory: BrokerPairFactory,
) -> AsyncIterator[tuple[Broker, RecordingPort, Broker, RecordingPort]]:
    a, b = await factory()
    port_a, port_b = RecordingPort(), RecordingPort()
    await a.start(port_a)
    try:
        await b.start(port_b)
        try:
            yield a, port_a, b, port_b
        finally:
            await b.close()
    finally:
        await a.close()


# --- the checks ------------------------------------------------------------------


async def check_publication_reaches_subscribed_node(factory: BrokerPairFactory) -> None:
    """A publication on A reaches B when B is subscribed, with its offset and data."""
    async with _nodes(factory) as (a, port_a, b, port_b):
        await b.subscribe("news")
        position = await a.publish("news", _pub(1), size=SIZE, ttl=TTL)
        _expect(position.offset == 1, f"the first publication got offset {position.offset}")
        await port_b.wait(lambda: bool(port_b.of("news")), "B to receive the publication")
        ((channel, pub, got),) = port_b.publications
        _expect(channel == "news", f"B heard channel {channel!r}")
        _expect(_n(pub) == 1 and pub.offset == 1, f"B got {pub}")
        _expect(got == position, f"B was told position {got}, publish returned {position}")
        _expect(port_a.publications == [], "A, not subscribed, heard its own publication")


async def check_unsubscribed_node_hears_nothing(factory: BrokerPairFactory) -> None:
    """A node never subscribed, or no longer subscribed, to a channel does not get it."""
    async with _nodes(factory) as (a, port_a, b, port_b):
        await a.subscribe("quiet")  # the witness
        await a.publish("quiet", _pub(1), size=SIZE, ttl=TTL)
        await port_a.wait(lambda: len(port_a.of("quiet")) == 1, "the witness to hear #1")
        await b.subscribe("quiet")
        await a.publish("quiet", _pub(2), size=SIZE, ttl=TTL)
        await port_b.wait(lambda: len(port_b.of("quiet")) == 1, "B to hear #2")
        await b.unsubscribe("quiet")
        _expect(b.subscribers("quiet") == 0, "B still counts a subscriber after unsubscribe")
        await a.publish("quiet", _pub(3), size=SIZE, ttl=TTL)
        await port_a.wait(lambda: len(port_a.of("quiet")) == 3, "the witness to hear #3")
        await asyncio.sleep(SETTLE)
        heard = [_n(p) for p in port_b.of("quiet")]
        _expect(heard == [2], f"B heard {heard}; only #2 was published while it was subscribed")


async def check_publisher_hears_itself(factory: BrokerPairFactory) -> None:
    """A subscribed publisher gets its own publication through the broker, once."""
    async with _nodes(factory) as (a, port_a, _, _):
        await a.subscribe("self")
        await a.publish("self", _pub(7), size=SIZE, ttl=TTL)
        await port_a.wait(lambda: bool(port_a.of("self")), "A to hear itself")
        await asyncio.sleep(SETTLE)
        _expect(len(port_a.of("self")) == 1, f"A heard itself {len(port_a.of('self'))} times")


async def check_reference_counting(factory: BrokerPairFactory) -> None:
    """Two subscribes need two unsubscribes before the node stops receiving."""
    async with _nodes(factory) as (a, port_a, b, port_b):
        await a.subscribe("rc")  # the witness
        await b.subscribe("rc")
        await b.subscribe("rc")
        _expect(
            b.subscribers("rc") == 2, f"after two subscribes the count is {b.subscribers('rc')}"
        )
        await b.unsubscribe("rc")
        _expect(b.subscribers("rc") == 1, "one unsubscribe did not lower the count to 1")
        await a.publish("rc", _pub(1), size=SIZE, ttl=TTL)
        await port_b.wait(lambda: len(port_b.of("rc")) == 1, "B (one subscriber left) to hear #1")
        await b.unsubscribe("rc")
        await b.unsubscribe("rc")  # one too many: no error, no negative count
        _expect(
            b.subscribers("rc") == 0, f"count after the last unsubscribe: {b.subscribers('rc')}"
        )
        await a.publish("rc", _pub(2), size=SIZE, ttl=TTL)
        await port_a.wait(lambda: len(port_a.of("rc")) == 2, "the witness to hear #2")
        await asyncio.sleep(SETTLE)
        _expect(len(port_b.of("rc")) == 1, "B still receives after its last unsubscribe")
        await b.subscribe("rc")
        await a.publish("rc", _pub(3), size=SIZE, ttl=TTL)
        await port_b.wait(lambda: len(port_b.of("rc")) == 2, "B, subscribed again, to hear #3")


async def check_subscribe_then_publish_no_gap(factory: BrokerPairFactory) -> None:
    """Once `subscribe` returned, the very next publication is delivered."""
    async with _nodes(factory) as (a, _, b, port_b):
        for n in range(5):
            channel = f"gap-{n}"
            await b.subscribe(channel)
            await a.publish(channel, _pub(n), size=SIZE, ttl=TTL)
        await port_b.wait(lambda: len(port_b.publications) == 5, "B to hear all five channels")


async def check_offsets_in_delivery_order(factory: BrokerPairFactory) -> None:
    """Concurrent publishes from both nodes: every node sees offsets 1..n in order."""
    count = 40
    async with _nodes(factory) as (a, port_a, b, port_b):
        await a.subscribe("order")
        await b.subscribe("order")
        positions = await asyncio.gather(
            *(
                (a if n % 2 else b).publish("order", _pub(n), size=SIZE, ttl=TTL)
                for n in range(count)
            )
        )
        offsets = sorted(p.offset for p in positions)
        _expect(offsets == list(range(1, count + 1)), f"publish returned offsets {offsets}")
        for name, port in (("A", port_a), ("B", port_b)):
            await port.wait(partial(_heard, port, "order", count), f"{name} to hear {count}")
            heard = [pub.offset for pub in port.of("order")]
            _expect(
                heard == list(range(1, count + 1)),
                f"{name} heard offsets {heard}, not 1..{count} in order",
            )
            by_offset = {p.offset: n for n, p in enumerate(positions)}
            _expect(
                all(_n(pub) == by_offset[pub.offset] for pub in port.of("order")),
                f"{name} heard data under another offset than publish returned",
            )


async def check_idempotency_key(factory: BrokerPairFactory) -> None:
    """A repeated idempotency key returns the first position and is not delivered again."""
    async with _nodes(factory) as (a, _, b, port_b):
        await b.subscribe("idem")
        first = await a.publish("idem", _pub(1), size=SIZE, ttl=TTL, idempotency_key="k")
        repeat_pub = _pub(2)
        again = await b.publish("idem", repeat_pub, size=SIZE, ttl=TTL, idempotency_key="k")
        _expect(again == first, f"the repeated key gave {again}, the first publish {first}")
        _expect(repeat_pub.offset == 0, "the repeated publication was given an offset")
        after = await a.publish("idem", _pub(3), size=SIZE, ttl=TTL)
        _expect(after.offset == 2, f"the next publication got offset {after.offset}, not 2")
        await port_b.wait(lambda: len(port_b.of("idem")) >= 2, "B to hear #1 and #3")
        await asyncio.sleep(SETTLE)
        heard = [_n(p) for p in port_b.of("idem")]
        _expect(heard == [1, 3], f"B heard {heard}; the repeat must not be delivered")


async def check_publish_without_history(factory: BrokerPairFactory) -> None:
    """Without history, a publication is delivered with no position and nothing is stored."""
    async with _nodes(factory) as (a, _, b, port_b):
        await b.subscribe("live")
        position = await a.publish("live", _pub(5))
        _expect(position == Position(0, ""), f"publish without history returned {position}")
        await port_b.wait(
            lambda: bool(port_b.of("live")), "B to hear a publication without history"
        )
        (pub,) = port_b.of("live")
        _expect(pub.offset == 0 and _n(pub) == 5, f"B got {pub}")
        pubs, top = await b.history.read("live")
        _expect(pubs == [] and top.offset == 0, f"history kept {pubs} / {top}")


async def check_delta_flag(factory: BrokerPairFactory) -> None:
    """The `delta` flag of `publish` reaches the other node, with and without history."""
    async with _nodes(factory) as (a, _, b, port_b):
        await b.subscribe("doc")
        await b.subscribe("live-doc")
        await a.publish("doc", _pub(1), size=SIZE, ttl=TTL, delta=True)
        await a.publish("doc", _pub(2), size=SIZE, ttl=TTL)
        await a.publish("live-doc", _pub(3), delta=True)
        await a.publish("live-doc", _pub(4))
        await port_b.wait(
            lambda: len(port_b.of("doc")) == 2 and len(port_b.of("live-doc")) == 2,
            "B to hear four publications",
        )
        _expect(
            port_b.deltas == [("doc", 1), ("live-doc", 0)],
            f"B heard the delta flag on {port_b.deltas}; expected the 1st and 3rd only",
        )
        pubs, _ = await b.history.read("doc")
        _expect(not any(p.delta for p in pubs), "the delta flag was stored in history")


async def check_history_shared(factory: BrokerPairFactory) -> None:
    """What A publishes with history, B reads from its history store, same offsets and epoch."""
    async with _nodes(factory) as (a, _, b, _):
        positions = [await a.publish("hist", _pub(n), size=2, ttl=TTL) for n in range(3)]
        pubs, top = await b.history.read("hist")
        _expect([p.offset for p in pubs] == [2, 3], f"B read offsets {[p.offset for p in pubs]}")
        _expect([_n(p) for p in pubs] == [1, 2], "B read other data")
        _expect(top == positions[-1], f"B read top {top}, A's last publish was {positions[-1]}")
        _expect(await a.history.position("hist") == top, "A and B disagree on the position")


async def check_top_follows_deliveries(factory: BrokerPairFactory) -> None:
    """A node's `history.top` knows every publication it was handed."""
    async with _nodes(factory) as (a, _, b, port_b):
        await b.subscribe("top")
        last = Position(0, "")
        for n in range(3):
            last = await a.publish("top", _pub(n), size=SIZE, ttl=TTL)
        await port_b.wait(lambda: len(port_b.of("top")) == 3, "B to hear three publications")
        top = b.history.top("top")
        _expect(top == last, f"B's history.top is {top} after hearing {last}")


async def check_join_leave(factory: BrokerPairFactory) -> None:
    """Joins and leaves reach the subscribed nodes with the client info."""
    info = ClientInfo(user="u1", client="c1", conn_info=Raw(b'{"a":1}'))
    async with _nodes(factory) as (a, port_a, b, port_b):
        await b.subscribe("room")
        await a.publish_join("room", info)
        await a.publish_leave("room", info)
        await port_b.wait(lambda: bool(port_b.leaves), "B to hear the leave")
        _expect(len(port_b.joins) == 1, f"B heard {len(port_b.joins)} joins")
        channel, got = port_b.joins[0]
        _expect(
            channel == "room" and got.user == "u1" and got.client == "c1",
            f"B heard join {channel!r} {got}",
        )
        _expect(bytes(got.conn_info) == b'{"a":1}', "the join lost conn_info")
        _expect(port_b.leaves[0][1].client == "c1", f"B heard leave {port_b.leaves[0]}")
        _expect(port_a.joins == [] and port_a.leaves == [], "A, not subscribed, heard a join")


async def check_control(factory: BrokerPairFactory) -> None:
    """Control messages reach the other node (or only the named one), never the sender."""
    async with _nodes(factory) as (a, port_a, b, port_b):
        await a.publish_control(b"to-all")
        await a.publish_control(b"to-nobody", node_id="no-such-node")
        await a.publish_control(b"to-b", node_id=b.node_id)
        await b.publish_control(b"from-b")
        await port_b.wait(lambda: b"to-b" in port_b.controls, "B to hear the message to it")
        await port_a.wait(lambda: b"from-b" in port_a.controls, "A to hear B")
        await asyncio.sleep(SETTLE)
        _expect(port_b.controls == [b"to-all", b"to-b"], f"B heard {port_b.controls}")
        _expect(port_a.controls == [b"from-b"], f"A heard {port_a.controls} (its own?)")


BROKER_CHECKS: tuple[BrokerCheck, ...] = (
    check_publication_reaches_subscribed_node,
    check_unsubscribed_node_hears_nothing,
    check_publisher_hears_itself,
    check_reference_counting,
    check_subscribe_then_publish_no_gap,
    check_offsets_in_delivery_order,
    check_idempotency_key,
    check_publish_without_history,
    check_delta_flag,
    check_history_shared,
    check_top_follows_deliveries,
    check_join_leave,
    check_control,
)


async def check_broker(factory: BrokerPairFactory) -> None:
    """Run every check in `BROKER_CHECKS`; raises AssertionError on the first failure."""
    for check in BROKER_CHECKS:
        await check(factory)
