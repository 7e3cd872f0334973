"""A Client driven through an in-memory transport and a real Node: no sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tests.core.conftest import OPEN, Conn, make_settings, settle, token
from tidings.core.client import MAX_PENDING_BYTES, MAX_PENDING_COMMANDS
from tidings.core.node import Node
from tidings.protocol.centrifuge import codes
from tidings.protocol.centrifuge.messages import Publication
from tidings.protocol.centrifuge.session import SessionState
from tidings.protocol.centrifuge.uni_codec import UniJsonCodec, connect_frame
from tidings.store.base import Position
from tidings.store.memory import MemoryHistoryStore
from tidings.testing import MemoryTransport


async def test_connect_reply_and_registration(node: Node) -> None:
    conn = Conn(node)
    assert node.hub.client(conn.client.id) is None, "not indexed before connect"
    reply = await conn.connect("u1")
    result = reply["connect"]
    assert reply["id"] == 1
    assert result["client"] == conn.client.id
    assert result["version"]
    assert (result["ping"], result["pong"]) == (25, True)
    # As from Centrifugo: the node and session only for emulated connections.
    assert "node" not in result and "session" not in result and "time" not in result
    assert conn.client.user == "u1"
    assert conn.client.session.state is SessionState.CONNECTED
    assert node.hub.client(conn.client.id) is conn.client
    assert node.counters["connects"] == 1


async def test_command_before_connect_closes_3501(node: Node) -> None:
    conn = Conn(node)
    replies = await conn.send({"id": 1, "ping": {}})
    assert replies == []
    assert conn.closed_with == 3501
    assert conn.client.closed


async def test_malformed_frame_closes_3501(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    await conn.send(b"{not json")
    assert conn.closed_with == 3501


async def test_frames_after_close_are_ignored(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    conn.client.disconnect(codes.FORCE_DISCONNECT)
    assert await conn.send({"id": 2, "ping": {}}) == []
    assert conn.closed_with == 3503


async def test_no_connect_in_time_closes_stale() -> None:
    node = Node(make_settings(client_stale_close_delay=0.05))
    conn = Conn(node)
    await asyncio.sleep(0.15)
    assert conn.closed_with == 3502
    await node.stop()


async def test_connect_cancels_the_stale_timer() -> None:
    node = Node(make_settings(client_stale_close_delay=0.05))
    conn = Conn(node)
    await conn.connect()
    await asyncio.sleep(0.15)
    assert conn.closed_with is None
    await node.stop()


async def test_replies_in_order_in_one_frame(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    replies = await conn.send(*({"id": n, "ping": {}} for n in range(2, 7)))
    assert [r["id"] for r in replies] == [2, 3, 4, 5, 6]
    assert len(conn.transport.frames) == 0  # taken
    conn.client.handle_frame(b'{"id":7,"ping":{}}\n{"id":8,"ping":{}}')
    await settle()
    assert conn.transport.frames == [b'{"id":7,"ping":{}}\n{"id":8,"ping":{}}']


async def test_pong_without_ping_closes_3501(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    await conn.send(b"{}")
    assert conn.closed_with == 3501


async def test_pong_after_server_ping(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    conn.client.send_ping()
    await settle()
    assert conn.transport.take() == [{}]
    assert await conn.send(b"{}") == []
    assert conn.closed_with is None
    assert not conn.client.session.awaiting_pong


async def test_unknown_method_is_104_and_connection_stays(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    reply = await conn.call({"id": 5, "brand_new_method": {}})
    assert reply == {"id": 5, "error": {"code": 104, "message": "method not found"}}
    assert conn.closed_with is None


async def test_slow_client_is_disconnected_3008() -> None:
    node = Node(make_settings(client_queue_max_size=1000))
    conn = Conn(node)
    await conn.connect()
    conn.transport.paused = True
    for _ in range(3):
        conn.client.enqueue(b"x" * 300)
    assert conn.closed_with is None
    conn.client.enqueue(b"x" * 300)
    assert conn.closed_with == 3008
    assert node.hub.client(conn.client.id) is None
    await node.stop()


async def test_paused_transport_holds_output_until_resumed(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    conn.transport.paused = True
    conn.client.enqueue(b"1")
    conn.client.enqueue(b"2")
    await settle()
    assert conn.transport.frames == []
    conn.transport.paused = False
    conn.client.resume()
    await settle()
    assert conn.transport.frames == [b"1\n2"]


async def test_disconnect_flushes_then_closes_and_cleans_up(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    await conn.subscribe("news")
    conn.client.enqueue(b'{"last":1}')
    conn.client.disconnect(codes.FORCE_RECONNECT)
    assert conn.transport.frames == [b'{"last":1}'], "queued output goes out before the close"
    assert (conn.closed_with, conn.transport.close_reason) == (3011, "force reconnect")
    assert node.hub.client(conn.client.id) is None
    assert node.hub.num_subscribers("news") == 0
    assert conn.client.subscriptions == {}
    assert conn.client.session.state is SessionState.CLOSED
    await settle()
    assert await node.presence.get("news") == {}
    conn.client.disconnect(codes.SHUTDOWN)
    assert conn.closed_with == 3011, "a second disconnect changes nothing"
    assert node.counters["disconnects"] == 1


async def test_transport_closed_by_peer(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    await conn.subscribe("news")
    conn.client.transport_closed()
    assert conn.client.closed
    assert conn.closed_with is None, "nothing to close: the peer is gone"
    assert node.hub.num_subscribers("news") == 0
    conn.client.enqueue(b"late")
    conn.client.send_ping()
    await settle()
    assert conn.transport.frames == []


async def test_connection_expiry_closes_3005(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    conn.client.set_expiry(int(time.time()))
    await asyncio.sleep(0.01)
    assert conn.closed_with == 3005


async def test_expiry_moved_by_refresh_is_not_enforced_early(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    conn.client.set_expiry(int(time.time()))
    conn.client.set_expiry(int(time.time()) + 60)
    await asyncio.sleep(0.01)
    assert conn.closed_with is None
    conn.client.set_expiry(0)
    assert conn.client.expire_at == 0


async def test_too_many_pending_commands_closes_3013(node: Node) -> None:
    conn = Conn(node)
    await conn.connect()
    frame = b"\n".join([b'{"id":9,"ping":{}}'] * 128)
    for _ in range(MAX_PENDING_COMMANDS // 128 + 1):
        conn.client.handle_frame(frame)  # no await: the worker never gets to run
    assert conn.closed_with == 3013


async def test_too_many_pending_bytes_closes_3013(node: Node) -> None:
    """Few commands, but big: what waits for processing is bounded in bytes too."""
    conn = Conn(node)
    await conn.connect()
    pad = "x" * 60_000
    frame = ('{"id":9,"publish":{"channel":"c","data":"' + pad + '"}}').encode()
    for _ in range(MAX_PENDING_BYTES // len(frame)):
        conn.client.handle_frame(frame)  # no await: the worker never gets to run
    assert conn.closed_with is None
    conn.client.handle_frame(frame)
    assert conn.closed_with == 3013


async def test_command_rate_limit_answers_111_then_cuts_off() -> None:
    node = Node(
        make_settings(
            client_command_rate=0.001, client_command_burst=3, client_command_abuse_limit=2
        )
    )
    conn = Conn(node)
    await conn.connect()  # the connect spends one token
    replies = await conn.send(*({"id": n, "ping": {}} for n in range(2, 6)))
    assert [r.get("ping") is not None for r in replies] == [True, True, False, False]
    assert replies[2]["error"]["code"] == 111
    assert replies[2]["error"]["temporary"] is True
    assert conn.closed_with is None
    await conn.send({"id": 9, "ping": {}})
    assert conn.closed_with == 3013
    await node.stop()


class FailingHistory(MemoryHistoryStore):
    async def read(
        self,
        channel: str,
        since: Position | None = None,
        limit: int = -1,
        reverse: bool = False,
    ) -> tuple[list[Publication], Position]:
        raise RuntimeError("disk on fire")


async def test_unexpected_failure_is_internal_error_100(
    node_factory: Callable[..., Node],
) -> None:
    node = Node(make_settings(), history=FailingHistory())
    conn = Conn(node)
    await conn.connect()
    await conn.subscribe("news")
    reply = await conn.call({"id": 3, "history": {"channel": "news"}})
    assert reply["error"] == {"code": 100, "message": "internal server error", "temporary": True}
    assert conn.closed_with is None
    assert (await conn.call({"id": 4, "ping": {}}))["ping"] == {}
    await node.stop()


async def test_node_stop_disconnects_everyone_with_3001(node: Node) -> None:
    pending, connected = Conn(node), Conn(node)
    await connected.connect()
    await node.stop()
    assert (pending.closed_with, connected.closed_with) == (3001, 3001)


# --- replies count towards the slow-client limit; unidirectional connect errors -------


async def test_a_recovery_larger_than_the_outbox_limit_is_not_recovered(
    node_factory: Callable[..., Node],
) -> None:
    node = node_factory(client_queue_max_size=4096, channel={**OPEN, "history_size": 100})
    reader = Conn(node)
    await reader.connect("r")
    first = await reader.subscribe("news", recoverable=True)
    epoch = first["subscribe"]["epoch"]
    await reader.call({"id": 3, "unsubscribe": {"channel": "news"}})
    big = b'{"text":"' + b"x" * 500 + b'"}'
    for _ in range(16):  # 8 KB of history, twice the outbox limit
        await node.publish("news", Publication(data=big).data)
    reply = await reader.subscribe(
        "news", cid=4, recover=True, recoverable=True, offset=0, epoch=epoch
    )
    result = reply["subscribe"]
    assert reader.closed_with is None, "refused recovery is not a slow client"
    assert "publications" not in result and not result.get("recovered")
    assert result["was_recovering"] and result["offset"] == 16, "positioned at the top"
    assert node.counters["unrecovered_reply_size"] == 1
    # Within the bound, recovery works as before.
    await reader.call({"id": 5, "unsubscribe": {"channel": "news"}})
    reply = await reader.subscribe(
        "news", cid=6, recover=True, recoverable=True, offset=12, epoch=epoch
    )
    assert [p["offset"] for p in reply["subscribe"]["publications"]] == [13, 14, 15, 16]
    assert reply["subscribe"]["recovered"]


async def test_a_history_reply_larger_than_the_outbox_limit_is_refused_106(
    node_factory: Callable[..., Node],
) -> None:
    node = node_factory(client_queue_max_size=4096, channel={**OPEN, "history_size": 100})
    reader = Conn(node)
    await reader.connect("r")
    await reader.subscribe("news")
    for _ in range(16):
        await node.publish("news", Publication(data=b'{"text":"' + b"x" * 500 + b'"}').data)
    reply = await reader.call({"id": 3, "history": {"channel": "news", "limit": -1}})
    assert reply["error"]["code"] == 106
    assert "client_queue_max_size (4096)" in reply["error"]["message"]
    assert "since" in reply["error"]["message"], "the message says how to page"
    paged = await reader.call({"id": 4, "history": {"channel": "news", "limit": 4}})
    assert [p["offset"] for p in paged["history"]["publications"]] == [1, 2, 3, 4]
    assert reader.closed_with is None


async def test_replies_a_client_does_not_read_trip_the_outbox_limit(
    node_factory: Callable[..., Node],
) -> None:
    node = node_factory(client_queue_max_size=4096)
    reader = Conn(node)
    await reader.connect("r")
    await reader.subscribe("news")
    for _ in range(6):
        await node.publish("news", Publication(data=b'{"text":"' + b"x" * 500 + b'"}').data)
    reader.transport.paused = True  # the client stopped reading
    for n in range(3, 10):
        await reader.send({"id": n, "history": {"channel": "news", "limit": -1}})
        if reader.closed_with is not None:
            break
    assert reader.closed_with == codes.SLOW.code
    assert node.counters["disconnected_slow"] == 1
    assert reader.client.outbox.size == 0


async def test_live_pushes_still_trip_the_outbox_limit(node_factory: Callable[..., Node]) -> None:
    node = node_factory(client_queue_max_size=2048)
    reader = Conn(node)
    await reader.connect("r")
    await reader.subscribe("news")
    reader.transport.paused = True  # the socket is backed up: nothing leaves the outbox
    big = Publication(data=b'{"text":"' + b"x" * 500 + b'"}').data
    for _ in range(8):
        await node.publish("news", big)
        await settle()
    assert reader.closed_with == codes.SLOW.code
    assert node.counters["disconnected_slow"] == 1


async def test_a_unidirectional_connect_error_closes_the_connection(node: Node) -> None:
    transport = MemoryTransport()
    client = node.accept(transport, UniJsonCodec())
    expired = token("u1", ttl=-10)
    client.handle_frame(connect_frame(b'{"token":"%s"}' % expired.encode()))
    await settle()
    assert transport.close_code == codes.INVALID_TOKEN.code, "not left waiting for stale 3502"
