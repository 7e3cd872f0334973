"""The official SDK (centrifuge-python) beside the reply bound.

Within `client_queue_max_size` recovery is unchanged (see tests/integration);
beyond it the SDK is never locked out: a resubscribe reports
`recovered: false`, an inbox replay starts later, a history call too large
fails with 106, and paging with `limit` and `since` reads everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from centrifuge import ClientState, ReplyError, StreamPosition

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.api import api_body, api_call
from tests.integration.support.sdk import connecting

BOUND = 16_384
PAD = "x" * 1000


async def _publish(server: ServerProcess, channel: str, first: int, count: int) -> None:
    commands = [
        {"publish": {"channel": channel, "data": {"n": n, "pad": PAD}}}
        for n in range(first, first + count)
    ]
    await api_body(server, "batch", {"commands": commands})


@pytest.fixture
def server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"client_queue_max_size": BOUND, "channel": OPEN_CHANNEL})


async def test_a_large_inbox_replay_starts_later_and_the_sdk_pages_the_rest(
    server: ServerProcess,
) -> None:
    await _publish(server, "#alice", 0, 40)  # about 40 KB waiting, the bound is 16 KB
    async with connecting(server) as connect:
        conn = await connect("alice")
        last = await conn.rec.wait("publication", lambda c: c.pub.offset == 40)
        replayed = [c.pub.offset for c in conn.rec.of("publication")]
        assert last and replayed == list(range(replayed[0], 41)) and replayed[0] > 1
        # The rest is read with paged history; every publication once.
        paged: list[int] = []
        since = StreamPosition(offset=0, epoch="")
        while since.offset < replayed[0] - 1:
            page = await conn.client.history("#alice", limit=5, since=since)
            paged += [p.offset for p in page.publications]
            since = StreamPosition(offset=paged[-1], epoch=page.epoch)
        assert paged[: replayed[0] - 1] == list(range(1, replayed[0]))
        with pytest.raises(ReplyError) as too_large:
            await conn.client.history("#alice", limit=-1)
        assert too_large.value.code == 106
        await asyncio.sleep(0.3)
        assert conn.client.state == ClientState.CONNECTED
        assert len(conn.rec.of("connected")) == 1, "the large inbox caused a reconnect"


async def test_a_recovery_beyond_the_bound_resubscribes_unrecovered(
    server: ServerProcess,
) -> None:
    async with connecting(server) as connect:
        conn = await connect("bob", min_reconnect_delay=1.0, max_reconnect_delay=2.0)
        _, rec = await conn.subscribed("stream")
        await _publish(server, "stream", 0, 1)
        await rec.wait("publication")
        await api_call(server, "disconnect", {"user": "bob", "disconnect": {"code": 3011}})
        await conn.rec.wait("connecting", lambda c: c.code == 3011)
        await _publish(server, "stream", 1, 40)  # far more than the bound was missed
        (again,) = await rec.wait("subscribed", lambda c: c.was_recovering)
        assert again.recovered is False
        assert again.stream_position.offset == 41
        await _publish(server, "stream", 41, 1)
        (live,) = await rec.wait("publication", lambda c: c.pub.offset == 42)
        assert live.pub.data["n"] == 41
        assert len(conn.rec.of("connected")) == 2
