"""Registration over TCP into the table, as nsqlookupd applies it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os

from tests.lookup.conftest import Registrant, RunningLookup
from tidings.lookup.http import Liveness
from tidings.lookup.server import LookupOptions, LookupServer


async def test_identify_answers_the_lookup_addresses(lookup: RunningLookup) -> None:
    registrant = await Registrant.connect(lookup.server.ports.tcp)
    body = json.dumps(
        {"broadcast_address": "n1", "tcp_port": 1, "http_port": 2, "version": "1.3.0", "x": 1}
    ).encode()
    answer = json.loads(await registrant.call(b"IDENTIFY\n" + len(body).to_bytes(4, "big") + body))
    ports = lookup.server.ports
    assert answer["tcp_port"] == ports.tcp
    assert answer["http_port"] == ports.http
    assert answer["broadcast_address"] == "127.0.0.1"
    assert answer["version"] == "1.3.0"
    assert list(answer) == sorted(answer)  # nsqlookupd's (Go map) key order
    assert await registrant.call(b"PING\n") == b"OK"
    await registrant.close()


async def test_register_channel_registers_its_topic(lookup: RunningLookup) -> None:
    registrant = await lookup.node()
    assert await registrant.call(b"REGISTER orders billing\n") == b"OK"
    assert await lookup.get("/topics") == (200, {"topics": ["orders"]})
    assert await lookup.get("/channels?topic=orders") == (200, {"channels": ["billing"]})
    status, found = await lookup.get("/lookup?topic=orders")
    assert status == 200
    assert found["channels"] == ["billing"]
    assert [p["tcp_port"] for p in found["producers"]] == [4150]
    await registrant.close()


async def test_unregister_topic_drops_the_nodes_channels(lookup: RunningLookup) -> None:
    registrant = await lookup.node()
    for line in (b"REGISTER t a\n", b"REGISTER t b\n", b"UNREGISTER t a\n"):
        assert await registrant.call(line) == b"OK"
    found = (await lookup.get("/lookup?topic=t"))[1]
    assert found["channels"] == ["a", "b"]  # the key of an unregistered channel stays
    assert await registrant.call(b"UNREGISTER t\n") == b"OK"
    found = (await lookup.get("/lookup?topic=t"))[1]
    assert found["producers"] == []
    assert (await lookup.get("/nodes"))[1]["producers"][0]["topics"] == []
    await registrant.close()


async def test_ephemeral_registrations_vanish_with_their_last_producer(
    lookup: RunningLookup,
) -> None:
    first, second = await lookup.node(), await lookup.node(tcp_port=5150)
    for registrant in (first, second):
        assert await registrant.call(b"REGISTER t#ephemeral c#ephemeral\n") == b"OK"
    assert await first.call(b"UNREGISTER t#ephemeral c#ephemeral\n") == b"OK"
    assert (await lookup.get("/channels?topic=t%23ephemeral"))[1] == {"channels": ["c#ephemeral"]}
    assert await second.call(b"UNREGISTER t#ephemeral c#ephemeral\n") == b"OK"
    assert (await lookup.get("/channels?topic=t%23ephemeral"))[1] == {"channels": []}
    assert await second.call(b"UNREGISTER t#ephemeral\n") == b"OK"
    assert await first.call(b"UNREGISTER t#ephemeral\n") == b"OK"
    assert (await lookup.get("/topics"))[1] == {"topics": []}
    await first.close()
    await second.close()


async def test_a_closed_connection_takes_its_registrations(lookup: RunningLookup) -> None:
    registrant = await lookup.node()
    assert await registrant.call(b"REGISTER t c\n") == b"OK"
    assert len((await lookup.get("/nodes"))[1]["producers"]) == 1
    await registrant.close()
    for _ in range(100):
        if (await lookup.get("/nodes"))[1]["producers"] == []:
            break
        await lookup.settle()
    assert (await lookup.get("/nodes"))[1] == {"producers": []}
    assert (await lookup.get("/lookup?topic=t"))[1]["producers"] == []


async def test_a_protocol_error_closes_only_that_connection(lookup: RunningLookup) -> None:
    good = await lookup.node()
    bad = await lookup.node(tcp_port=5150)
    assert await bad.call(b"REGISTER bad/name\n") == (
        b"E_BAD_TOPIC REGISTER topic name 'bad/name' is not valid"
    )
    assert await bad.closed()
    assert await good.call(b"REGISTER t\n") == b"OK"
    await good.close()


async def test_bad_magic_is_refused(lookup: RunningLookup) -> None:
    registrant = await Registrant.connect(lookup.server.ports.tcp, magic=b"  V2")
    assert await registrant.answer() == b"E_BAD_PROTOCOL"
    assert await registrant.closed()


async def test_nodes_that_stop_pinging_are_no_longer_listed(lookup: RunningLookup) -> None:
    registrant = await lookup.node()
    assert await registrant.call(b"REGISTER t\n") == b"OK"
    lookup.clock.advance(299)
    assert await registrant.call(b"PING\n") == b"OK"
    lookup.clock.advance(299)
    assert len((await lookup.get("/lookup?topic=t"))[1]["producers"]) == 1
    lookup.clock.advance(2)  # 301 s since the PING
    assert (await lookup.get("/lookup?topic=t"))[1]["producers"] == []
    assert (await lookup.get("/nodes"))[1] == {"producers": []}
    await registrant.close()


async def test_bad_clients_do_not_disturb_a_node(lookup: RunningLookup) -> None:
    port = lookup.server.ports.tcp
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(200)]
    garbage = [await Registrant.connect(port, magic=os.urandom(64)) for _ in range(20)]
    endless = await Registrant.connect(port)
    endless.writer.write(b"R" * (1024 * 1024))  # a line that never ends
    huge = await Registrant.connect(port)
    huge.writer.write(b"IDENTIFY\n" + (2**31 - 1).to_bytes(4, "big"))  # a 2 GiB body

    node = await lookup.node()
    assert await node.call(b"REGISTER t\n") == b"OK"
    assert len((await lookup.get("/lookup?topic=t"))[1]["producers"]) == 1

    assert await endless.answer() == b"E_INVALID command line too long"
    assert await huge.answer() == b"E_BAD_BODY IDENTIFY invalid body size 2147483647"
    for registrant in [*garbage, endless, huge]:
        if registrant not in (endless, huge):
            assert (await registrant.answer()).startswith(b"E_")
        # A reset (our unread bytes still in its buffer at close) also means closed.
        with contextlib.suppress(ConnectionResetError):
            assert await registrant.closed()
    for _, writer in idle:
        writer.close()
    await node.close()


async def test_silent_connections_are_closed() -> None:
    options = LookupOptions(
        tcp_address="127.0.0.1",
        tcp_port=0,
        http_address="127.0.0.1",
        http_port=0,
        liveness=Liveness(inactive_producer_timeout=0.2),
    )
    server = LookupServer(options)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.ports.tcp)
        assert await asyncio.wait_for(reader.read(1), 10) == b""  # closed by the server
        writer.close()
    finally:
        await server.stop()
