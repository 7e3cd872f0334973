"""Durable streams and at-least-once delivery, end to end.

A real `tidings serve` process; publishing through `cent` (and raw HTTP for the
extra methods), receiving with centrifuge-python.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from cent import AsyncClient, HistoryRequest, PublishRequest
from centrifuge import Client, ReplyError

from tests.conftest import ServerProcess
from tests.integration.durable_support import TIMEOUT, Inbox, subscription
from tests.integration.support.api import api_raw


@pytest.fixture
async def cent(server_factory: Callable[..., ServerProcess]) -> AsyncIterator[Any]:
    """(server with default settings: durable personal inboxes, cent client)."""
    server = server_factory({})
    async with AsyncClient(server.api_url, server.api_key, timeout=TIMEOUT) as client:
        yield server, client


async def publish(client: AsyncClient, channel: str, n: int, **kwargs: Any) -> int:
    result = await client.publish(PublishRequest(channel=channel, data={"n": n}, **kwargs))
    return int(result.offset)


def ns(received: list[tuple[int, Any]]) -> list[int]:
    return [data["n"] for _, data in received]


@contextlib.asynccontextmanager
async def inbox(server: ServerProcess, user: str, **kwargs: Any) -> AsyncIterator[Inbox]:
    conn = Inbox(server, user, **kwargs)
    try:
        yield await conn.connect()
    finally:
        await conn.close()


# --- offline inboxes ---------------------------------------------------------------------


async def test_offline_messages_arrive_on_reconnect_in_order_before_live_ones(
    cent: tuple[ServerProcess, AsyncClient],
) -> None:
    server, client = cent
    alice = Inbox(server, "alice")
    try:
        await alice.connect()
        await asyncio.sleep(0.2)
        assert alice.offsets == []  # an empty inbox replays nothing
        await alice.close()

        offline = [await publish(client, "#alice", n) for n in range(5)]
        assert offline == [1, 2, 3, 4, 5]

        # The same client object reconnects (with its position hint) while live
        # publications keep coming: the replay comes first, then live ones, no gap.
        async def live() -> None:
            for n in range(5, 25):
                await publish(client, "#alice", n)
                await asyncio.sleep(0.005)

        publisher = asyncio.create_task(live())
        await alice.connect()
        await publisher
        await alice.received.wait_count(25)
        await asyncio.sleep(0.2)
        assert alice.offsets == list(range(1, 26))
        assert ns(alice.received.pubs) == list(range(25))
        sub = alice.received.subscribed[-1]
        assert sub.recovered and sub.was_recovering
    finally:
        await alice.close()

    # A fresh client object (no position hint) gets the whole inbox: nothing was acked.
    async with inbox(server, "alice") as fresh:
        await fresh.received.wait_count(25)
        await publish(client, "#alice", 25)
        await fresh.received.wait_count(26)
        assert fresh.offsets == list(range(1, 27))


async def test_a_fresh_client_gets_offline_messages(
    cent: tuple[ServerProcess, AsyncClient],
) -> None:
    server, client = cent
    for n in range(3):
        await publish(client, "#carol", n)
    async with inbox(server, "carol") as carol:
        await carol.received.wait_count(3)
        await publish(client, "#carol", 3)
        await carol.received.wait_count(4)
        await asyncio.sleep(0.1)
        assert carol.offsets == [1, 2, 3, 4]
        assert ns(carol.received.pubs) == [0, 1, 2, 3]
    # Other users' inboxes are theirs alone.
    async with inbox(server, "dave") as dave:
        await asyncio.sleep(0.2)
        assert dave.offsets == []


async def test_ack_moves_the_replay_start(cent: tuple[ServerProcess, AsyncClient]) -> None:
    server, client = cent
    for n in range(6):
        await publish(client, "#erin", n)
    async with inbox(server, "erin") as erin:
        await erin.received.wait_count(6)
        assert await erin.ack(4) == {"channel": "#erin", "offset": 4}
        # Never backwards.
        assert await erin.ack(2) == {"channel": "#erin", "offset": 4}
        with pytest.raises(ReplyError) as beyond:
            await erin.ack(99)
        assert beyond.value.code == 107
        with pytest.raises(ReplyError) as other:
            await erin.ack(1, channel="#frank")
        assert other.value.code == 103
    await publish(client, "#erin", 6)
    async with inbox(server, "erin") as again:
        await again.received.wait_count(3)
        await asyncio.sleep(0.2)
        assert again.offsets == [5, 6, 7]
        assert ns(again.received.pubs) == [4, 5, 6]
        assert await again.ack(7) == {"channel": "#erin", "offset": 7}
    async with inbox(server, "erin") as done:
        await asyncio.sleep(0.3)
        assert done.offsets == []


async def test_delivery_status(cent: tuple[ServerProcess, AsyncClient]) -> None:
    server, client = cent
    async with aiohttp.ClientSession() as http:

        async def status(**query: Any) -> dict[str, Any]:
            body = await api_raw(server, "delivery_status", {"channel": "#gina", **query}, http)
            assert "result" in body, body
            result: dict[str, Any] = body["result"]
            return result

        offline = await publish(client, "#gina", 0, idempotency_key="order-1")
        st = await status(offset=offline)
        assert st["stored"] and st["stored_at"] > 0
        assert not st["delivered"] and st["delivered_to"] == []
        assert not st["acked"] and st["acked_by"] == []
        assert (await status(idempotency_key="order-1"))["offset"] == offline

        async with inbox(server, "gina") as gina:
            await gina.received.wait_count(1)
            client_id = gina.client.client_id
            # Replayed on connect: delivered to this connection.
            st = await status(offset=offline)
            assert st["delivered"] and st["delivered_to"] == [client_id]

            live = await publish(client, "#gina", 1)
            await gina.received.wait_count(2)
            st = await status(offset=live)
            assert st["stored"] and st["delivered"] and st["delivered_at"] >= st["stored_at"]
            assert st["delivered_to"] == [client_id]
            assert not st["acked"]

            await gina.ack(live)
            for offset in (offline, live):
                st = await status(offset=offset)
                assert st["acked"] and st["acked_at"] > 0
                assert [(a["user"], a["client"]) for a in st["acked_by"]] == [("gina", client_id)]

        unknown = await api_raw(
            server, "delivery_status", {"channel": "#gina", "idempotency_key": "nope"}, http
        )
        assert unknown["error"]["code"] == 107
        beyond = await status(offset=99)
        assert not beyond["stored"] and not beyond["delivered"] and not beyond["acked"]


async def test_idempotency_key_stores_once(cent: tuple[ServerProcess, AsyncClient]) -> None:
    server, client = cent
    async with inbox(server, "hal") as hal:
        first = await client.publish(
            PublishRequest(channel="#hal", data={"n": 0}, idempotency_key="k")
        )
        second = await client.publish(
            PublishRequest(channel="#hal", data={"n": 1}, idempotency_key="k")
        )
        assert (first.offset, first.epoch) == (second.offset, second.epoch) == (1, first.epoch)
        third = await publish(client, "#hal", 2, idempotency_key="k2")
        assert third == 2
        await hal.received.wait_count(2)
        await asyncio.sleep(0.2)
        assert ns(hal.received.pubs) == [0, 2]
    history = await client.history(HistoryRequest(channel="#hal", limit=-1))
    assert [p.offset for p in history.publications] == [1, 2]


# --- a durable namespace across restarts --------------------------------------------------

ORDERS = {
    "durable": True,
    "fsync": "always",
    "history_size": 1000,
    "history_ttl": "1h",
    "allow_subscribe_for_client": True,
    "allow_history_for_subscriber": True,
    "force_recovery": True,
}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
async def test_durable_namespace_survives_restart_and_client_recovers(
    server_factory: Callable[..., ServerProcess], sig: int
) -> None:
    server = server_factory({"namespaces": {"orders": ORDERS}})
    client = Client(
        server.ws_url,
        token=server.token("ivan"),
        proxy=None,
        min_reconnect_delay=2.5,
        max_reconnect_delay=2.5,
    )
    sub, received = subscription(client, "orders:1", recoverable=True)
    try:
        await client.connect()
        await sub.subscribe()
        await received.wait_for(lambda: bool(received.subscribed))
        epoch = received.subscribed[0].stream_position.epoch
        async with AsyncClient(server.api_url, server.api_key, timeout=TIMEOUT) as api_client:
            before = [await publish(api_client, "orders:1", n) for n in range(3)]
            keyed = await publish(api_client, "orders:1", 3, idempotency_key="pay-1")
        assert [*before, keyed] == [1, 2, 3, 4]
        await received.wait_count(4)

        server.restart(sig)

        async with AsyncClient(server.api_url, server.api_key, timeout=TIMEOUT) as api_client:
            history = await api_client.history(HistoryRequest(channel="orders:1", limit=-1))
            assert history.epoch == epoch
            assert [p.offset for p in history.publications] == [1, 2, 3, 4]
            assert [p.data["n"] for p in history.publications] == [0, 1, 2, 3]
            # Published while the client is still away: recovered on its reconnect.
            after = [await publish(api_client, "orders:1", n) for n in range(4, 7)]
            assert after == [5, 6, 7]
            again = await api_client.publish(
                PublishRequest(channel="orders:1", data={"n": 99}, idempotency_key="pay-1")
            )
            assert (again.offset, again.epoch) == (4, epoch)

        await received.wait_count(7, within=20)
        await asyncio.sleep(0.2)
        assert received.offsets == [1, 2, 3, 4, 5, 6, 7]
        assert ns(received.pubs) == [0, 1, 2, 3, 4, 5, 6]
        resubscribed = received.subscribed[-1]
        assert len(received.subscribed) == 2
        assert resubscribed.was_recovering and resubscribed.recovered
        assert resubscribed.stream_position.epoch == epoch
    finally:
        await client.disconnect()


async def test_memory_history_starts_a_new_epoch_after_restart(
    server_factory: Callable[..., ServerProcess],
) -> None:
    """The contrast: a channel without `durable` loses its stream (a new epoch)."""
    server = server_factory({"namespaces": {"chat": {**ORDERS, "durable": False}}})
    async with AsyncClient(server.api_url, server.api_key, timeout=TIMEOUT) as api_client:
        first = await api_client.publish(PublishRequest(channel="chat:1", data={}))
    server.restart()
    async with AsyncClient(server.api_url, server.api_key, timeout=TIMEOUT) as api_client:
        history = await api_client.history(HistoryRequest(channel="chat:1", limit=-1))
        assert history.epoch != first.epoch and not history.publications


async def test_history_in_a_loop_is_rate_limited(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(
        {
            "namespaces": {"orders": ORDERS},
            "client_history_rate": 5,
            "client_history_burst": 10,
        }
    )
    client = Client(server.ws_url, token=server.token("judy"), proxy=None)
    sub, received = subscription(client, "orders:2", recoverable=True)
    try:
        await client.connect()
        await sub.subscribe()
        await received.wait_for(lambda: bool(received.subscribed))
        codes: list[int] = []
        for _ in range(40):
            try:
                await sub.history(limit=10)
                codes.append(0)
            except ReplyError as exc:
                codes.append(exc.code)
        assert set(codes) == {0, 111}
        assert codes[:10] == [0] * 10  # the burst
        assert codes.count(111) >= 20
        # Refused, not cut off: the connection stays, and the bucket refills.
        assert client.state.value == "connected"
        await asyncio.sleep(0.5)
        await sub.history(limit=10)
    finally:
        await client.disconnect()
