"""Every client command and its error paths, through a real Node and a memory transport."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from msgspec import Raw

from tests.core.conftest import SECRET, Conn, settle, token
from tidings.core.node import Node

NAMESPACES: dict[str, Any] = {
    # Nothing allowed: every client operation is refused with 103.
    "closed": {"history_size": 5, "history_ttl": "1m", "presence": True},
    # Subscribing allowed, but no presence and no history kept.
    "bare": {"allow_subscribe_for_client": True},
    # Recovery for everyone.
    "stream": {
        "history_size": 3,
        "history_ttl": "1m",
        "force_recovery": True,
        "allow_subscribe_for_client": True,
        "allow_publish_for_client": True,
        "allow_history_for_client": True,
    },
}


@pytest.fixture
def node(node_factory: Callable[..., Node]) -> Node:
    return node_factory(namespaces=NAMESPACES)


@pytest.fixture
async def alice(node: Node) -> Conn:
    conn = Conn(node)
    await conn.connect("alice")
    return conn


def error(reply: dict[str, Any]) -> int:
    assert "error" in reply, f"expected an error, got {reply}"
    return int(reply["error"]["code"])


def sub_token(user: str, channel: str, ttl: float | None = 3600, **claims: Any) -> str:
    return token(user, ttl, channel=channel, **claims)


# --- before connect -----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        {"id": 1, "subscribe": {"channel": "news"}},
        {"id": 1, "publish": {"channel": "news", "data": 1}},
        {"id": 1, "history": {"channel": "news"}},
        {"id": 1, "rpc": {"method": "x"}},
        {"send": {"data": 1}},
    ],
)
async def test_anything_before_connect_closes_3501(node: Node, command: dict[str, Any]) -> None:
    conn = Conn(node)
    assert await conn.send(command) == []
    assert conn.closed_with == 3501


# --- connect ------------------------------------------------------------------------


async def test_connect_with_token(node: Node) -> None:
    conn = Conn(node)
    exp = int(time.time()) + 600
    reply = await conn.call(
        {"id": 1, "connect": {"token": token("bob", ttl=None, exp=exp, info={"n": 1})}}
    )
    result = reply["connect"]
    assert result["client"] == conn.client.id
    assert result["expires"] is True
    assert 590 <= result["ttl"] <= 600
    assert conn.client.user == "bob"
    assert conn.client.info == b'{"n":1}'
    assert conn.client.expire_at == exp


async def test_connect_without_token_is_3500_unless_anonymous_allowed(
    node_factory: Callable[..., Node],
) -> None:
    closed = Conn(node_factory())
    await closed.send({"id": 1, "connect": {}})
    assert closed.closed_with == 3500

    anon = Conn(node_factory(allow_anonymous=True))
    reply = await anon.call({"id": 1, "connect": {"name": "js", "version": "5.0"}})
    assert reply["connect"]["client"] == anon.client.id
    assert anon.client.user == ""
    assert (anon.client.name, anon.client.version) == ("js", "5.0")


async def test_token_with_empty_sub_is_3500_unless_anonymous_allowed(
    node_factory: Callable[..., Node],
) -> None:
    closed = Conn(node_factory())
    await closed.send({"id": 1, "connect": {"token": token("")}})
    assert closed.closed_with == 3500
    anon = Conn(node_factory(allow_anonymous=True))
    assert "connect" in await anon.call({"id": 1, "connect": {"token": token("")}})


@pytest.mark.parametrize(
    "bad", ["garbage", token("bob", secret="wrong-secret-0123456789-0123456789-xyz")]
)
async def test_invalid_token_is_3500(node: Node, bad: str) -> None:
    conn = Conn(node)
    assert await conn.send({"id": 1, "connect": {"token": bad}}) == []
    assert (conn.closed_with, conn.transport.close_reason) == (3500, "invalid token")
    assert node.hub.num_clients == 0


async def test_expired_token_is_109(node: Node) -> None:
    conn = Conn(node)
    reply = await conn.call({"id": 1, "connect": {"token": token("bob", ttl=-10)}})
    assert error(reply) == 109
    assert conn.closed_with is None, "the SDK refreshes the token and connects again"
    assert node.hub.num_clients == 0
    assert "connect" in await conn.call({"id": 2, "connect": {"token": token("bob")}})


async def test_second_connect_closes_3501(alice: Conn) -> None:
    await alice.send({"id": 5, "connect": {"token": token("alice")}})
    assert alice.closed_with == 3501


async def test_token_channels_are_server_side_subscriptions(node: Node) -> None:
    conn = Conn(node)
    reply = await conn.call(
        {"id": 1, "connect": {"token": token("bob", channels=["news", "stream:x"])}}
    )
    subs = reply["connect"]["subs"]
    assert set(subs) == {"news", "stream:x"}
    assert subs["stream:x"]["recoverable"] is True and subs["stream:x"]["epoch"]
    assert set(conn.client.subscriptions) == {"news", "stream:x"}
    assert node.hub.num_subscribers("news") == 1


async def test_personal_channel_subscribed_on_connect(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    node = node_factory(personal_channel=True, data_dir=str(tmp_path))
    conn = Conn(node)
    reply = await conn.call({"id": 1, "connect": {"token": token("bob")}})
    personal = node.personal_channel("bob")
    assert personal in reply["connect"]["subs"]
    assert personal in conn.client.subscriptions
    await node.publish(personal, Raw(b'"hi"'))
    await settle()
    assert any(r.get("push", {}).get("pub", {}).get("data") == "hi" for r in conn.transport.take())


async def test_personal_channel_takes_its_namespace_options(
    node_factory: Callable[..., Node], tmp_path: Path
) -> None:
    """With `personal_channel_namespace`, `<ns>:#<user>` is like any channel of that namespace."""
    inbox = {
        "presence": True,
        "join_leave": True,
        "force_push_join_leave": True,
        "allow_publish_for_subscriber": True,
        "allow_presence_for_subscriber": True,
        "history_size": 10,
        "history_ttl": "1m",
    }
    node = node_factory(
        personal_channel=True,
        personal_channel_namespace="inbox",
        namespaces={"inbox": inbox},
        data_dir=str(tmp_path),
    )
    personal = node.personal_channel("bob")
    assert personal == "inbox:#bob"
    first, second = Conn(node), Conn(node)
    reply = await first.call({"id": 1, "connect": {"token": token("bob")}})
    assert personal in reply["connect"]["subs"]
    await second.call({"id": 1, "connect": {"token": token("bob")}})
    await settle()
    assert any("join" in r.get("push", {}) for r in first.transport.take())  # join/leave
    reply = await first.call({"id": 2, "presence_stats": {"channel": personal}})
    assert reply["presence_stats"] == {"num_clients": 2, "num_users": 1}
    reply = await first.call({"id": 3, "publish": {"channel": personal, "data": {"n": 1}}})
    assert reply == {"id": 3, "publish": {}}  # client publish, as the namespace allows
    assert (await node.history.position(personal)).offset == 1


# --- subscribe ------------------------------------------------------------------------


async def test_subscribe(alice: Conn, node: Node) -> None:
    reply = await alice.subscribe("news")
    assert reply == {"id": 2, "subscribe": {}}
    assert node.hub.num_subscribers("news") == 1
    assert set(await node.presence.get("news")) == {alice.client.id}


async def test_subscribe_recoverable_returns_position(alice: Conn, node: Node) -> None:
    await node.publish("news", Raw(b"1"))
    reply = await alice.subscribe("news", recoverable=True)
    result = reply["subscribe"]
    assert result["recoverable"] and result["positioned"]
    assert result["offset"] == 1 and result["epoch"]


async def test_subscribe_unknown_namespace_is_102(alice: Conn) -> None:
    assert error(await alice.subscribe("nope:x")) == 102


async def test_subscribe_without_permission_is_103(alice: Conn) -> None:
    assert error(await alice.subscribe("closed:x")) == 103
    assert "closed:x" not in alice.client.subscriptions


async def test_subscribe_twice_is_105(alice: Conn) -> None:
    await alice.subscribe("news")
    assert error(await alice.subscribe("news", cid=3)) == 105


@pytest.mark.parametrize("channel", ["", "with space", "x" * 300])
async def test_subscribe_bad_channel_is_107(alice: Conn, channel: str) -> None:
    assert error(await alice.subscribe(channel)) == 107


async def test_private_channel_needs_a_subscription_token(alice: Conn) -> None:
    assert error(await alice.subscribe("$secret")) == 103
    reply = await alice.subscribe("$secret", cid=3, token=sub_token("alice", "$secret"))
    assert "subscribe" in reply
    assert reply["subscribe"].get("expires") is True


async def test_subscription_token_for_another_channel_or_user_is_103(alice: Conn) -> None:
    assert error(await alice.subscribe("$a", token=sub_token("alice", "$b"))) == 103
    assert error(await alice.subscribe("$a", cid=3, token=sub_token("bob", "$a"))) == 103


async def test_expired_subscription_token_is_109(alice: Conn) -> None:
    assert error(await alice.subscribe("$a", token=sub_token("alice", "$a", ttl=-10))) == 109


async def test_subscription_token_opens_a_closed_namespace(alice: Conn) -> None:
    assert "subscribe" in await alice.subscribe("closed:x", token=sub_token("alice", "closed:x"))


async def test_channel_limit_is_106(node_factory: Callable[..., Node]) -> None:
    conn = Conn(node_factory(client_channel_limit=2))
    await conn.connect("alice")
    await conn.subscribe("a", cid=2)
    await conn.subscribe("b", cid=3)
    assert error(await conn.subscribe("c", cid=4)) == 106


async def test_recovery(alice: Conn, node: Node) -> None:
    first = await node.publish("stream:r", Raw(b"1"))
    await node.publish("stream:r", Raw(b"2"))
    await node.publish("stream:r", Raw(b"3"))
    reply = await alice.subscribe("stream:r", recover=True, offset=1, epoch=first.epoch)
    result = reply["subscribe"]
    assert result["recovered"] is True and result["was_recovering"] is True
    assert [p["offset"] for p in result["publications"]] == [2, 3]
    assert [p["data"] for p in result["publications"]] == [2, 3]
    # As from Centrifugo: recovered, the offset asked from; the publications reach the top.
    assert (result["offset"], result["epoch"]) == (1, first.epoch)


async def test_recovery_never_partial(alice: Conn, node: Node) -> None:
    first = await node.publish("stream:p", Raw(b"1"))
    for n in range(2, 6):
        await node.publish("stream:p", Raw(str(n).encode()))
    # history_size 3 keeps offsets 3-5: offset 2 is lost, so nothing is "recovered".
    reply = await alice.subscribe("stream:p", recover=True, offset=1, epoch=first.epoch)
    result = reply["subscribe"]
    assert result.get("recovered", False) is False
    assert result["was_recovering"] is True
    assert "publications" not in result
    assert result["offset"] == 5


async def test_recovery_with_another_epoch_is_not_recovered(alice: Conn, node: Node) -> None:
    await node.publish("stream:e", Raw(b"1"))
    reply = await alice.subscribe("stream:e", recover=True, offset=0, epoch="stale-epoch")
    assert reply["subscribe"].get("recovered", False) is False


async def test_reject_unrecovered_flag_gives_112_and_no_subscription(
    alice: Conn, node: Node
) -> None:
    first = await node.publish("stream:f", Raw(b"1"))
    for n in range(2, 6):
        await node.publish("stream:f", Raw(str(n).encode()))
    reply = await alice.subscribe("stream:f", recover=True, offset=1, epoch=first.epoch, flag=2)
    assert reply["error"] == {"code": 112, "message": "unrecoverable position"}
    assert "stream:f" not in alice.client.subscriptions
    # Recoverable: the flag changes nothing.
    reply = await alice.subscribe("stream:f", recover=True, offset=4, epoch=first.epoch, flag=2)
    assert reply["subscribe"]["recovered"] is True


# --- unsubscribe ----------------------------------------------------------------------


async def test_unsubscribe(alice: Conn, node: Node) -> None:
    await alice.subscribe("news")
    reply = await alice.call({"id": 3, "unsubscribe": {"channel": "news"}})
    assert reply == {"id": 3, "unsubscribe": {}}
    assert node.hub.num_subscribers("news") == 0
    await node.publish("news", Raw(b"1"))
    await settle()
    assert alice.transport.take() == []


async def test_unsubscribe_when_not_subscribed_is_ok(alice: Conn) -> None:
    assert await alice.call({"id": 3, "unsubscribe": {"channel": "news"}}) == {
        "id": 3,
        "unsubscribe": {},
    }


async def test_unsubscribe_without_channel_is_107(alice: Conn) -> None:
    assert error(await alice.call({"id": 3, "unsubscribe": {}})) == 107


# --- publish --------------------------------------------------------------------------


async def test_publish_reaches_subscribers(alice: Conn, node: Node) -> None:
    bob = Conn(node)
    await bob.connect("bob")
    await bob.subscribe("news")
    await alice.subscribe("news")
    reply = await alice.call({"id": 3, "publish": {"channel": "news", "data": {"text": "hi"}}})
    assert reply == {"id": 3, "publish": {}}
    for conn in (alice, bob):
        pushes = conn.pushes if conn is alice else conn.transport.take()
        pubs = [p["push"] for p in pushes if "pub" in p.get("push", {})]
        assert len(pubs) == 1, pushes
        assert pubs[0]["channel"] == "news"
        assert pubs[0]["pub"]["data"] == {"text": "hi"}
        assert pubs[0]["pub"]["info"]["user"] == "alice"
        assert pubs[0]["pub"]["offset"] == 1


async def test_publish_without_data_is_107(alice: Conn) -> None:
    assert error(await alice.call({"id": 3, "publish": {"channel": "news"}})) == 107


async def test_publish_without_permission_is_103(alice: Conn) -> None:
    assert error(await alice.call({"id": 3, "publish": {"channel": "closed:x", "data": 1}})) == 103


async def test_publish_unknown_namespace_is_102(alice: Conn) -> None:
    assert error(await alice.call({"id": 3, "publish": {"channel": "zz:x", "data": 1}})) == 102


# --- presence ---------------------------------------------------------------------------


async def test_presence_and_stats(alice: Conn, node: Node) -> None:
    bob = Conn(node)
    await bob.connect("bob")
    await bob.subscribe("news")
    await alice.subscribe("news")
    reply = await alice.call({"id": 3, "presence": {"channel": "news"}})
    presence = reply["presence"]["presence"]
    assert set(presence) == {alice.client.id, bob.client.id}
    assert presence[bob.client.id]["user"] == "bob"
    reply = await alice.call({"id": 4, "presence_stats": {"channel": "news"}})
    assert reply["presence_stats"] == {"num_clients": 2, "num_users": 2}


async def test_presence_not_subscribed_is_103(alice: Conn) -> None:
    assert error(await alice.call({"id": 3, "presence": {"channel": "news"}})) == 103
    assert error(await alice.call({"id": 4, "presence_stats": {"channel": "news"}})) == 103


async def test_presence_off_is_108(alice: Conn) -> None:
    await alice.subscribe("bare:x")
    assert error(await alice.call({"id": 3, "presence": {"channel": "bare:x"}})) == 108
    assert error(await alice.call({"id": 4, "presence_stats": {"channel": "bare:x"}})) == 108


# --- history ------------------------------------------------------------------------------


async def test_history(alice: Conn, node: Node) -> None:
    for n in range(1, 5):
        await node.publish("stream:h", Raw(str(n).encode()))
    reply = await alice.call({"id": 3, "history": {"channel": "stream:h", "limit": -1}})
    result = reply["history"]
    assert [p["data"] for p in result["publications"]] == [2, 3, 4]
    assert result["offset"] == 4 and result["epoch"]
    reply = await alice.call(
        {"id": 4, "history": {"channel": "stream:h", "limit": 1, "reverse": True}}
    )
    assert [p["offset"] for p in reply["history"]["publications"]] == [4]
    reply = await alice.call(
        {
            "id": 5,
            "history": {"channel": "stream:h", "limit": -1, "since": {"offset": 3, "epoch": ""}},
        }
    )
    assert [p["offset"] for p in reply["history"]["publications"]] == [4]


async def test_history_limit_0_is_position_only(alice: Conn, node: Node) -> None:
    await node.publish("stream:z", Raw(b"1"))
    reply = await alice.call({"id": 3, "history": {"channel": "stream:z"}})
    assert reply["history"]["publications"] == []  # written empty, as Centrifugo does
    assert reply["history"]["offset"] == 1


async def test_history_unrecoverable_position_is_112(alice: Conn, node: Node) -> None:
    top = await node.publish("stream:u", Raw(b"1"))
    for since in ({"offset": 9, "epoch": top.epoch}, {"offset": 0, "epoch": "other"}):
        reply = await alice.call(
            {"id": 3, "history": {"channel": "stream:u", "limit": -1, "since": since}}
        )
        assert error(reply) == 112


async def test_history_off_is_108(alice: Conn) -> None:
    await alice.subscribe("bare:x")
    assert error(await alice.call({"id": 3, "history": {"channel": "bare:x"}})) == 108


async def test_history_not_subscribed_is_103(alice: Conn) -> None:
    assert error(await alice.call({"id": 3, "history": {"channel": "news"}})) == 103


# --- ping, send, rpc --------------------------------------------------------------------


async def test_ping(alice: Conn) -> None:
    assert await alice.call({"id": 7, "ping": {}}) == {"id": 7, "ping": {}}


async def test_send_gets_no_reply(alice: Conn) -> None:
    assert await alice.send({"send": {"data": {"x": 1}}}) == []
    assert alice.closed_with is None


async def test_rpc_without_handler_is_108(alice: Conn) -> None:
    assert error(await alice.call({"id": 3, "rpc": {"method": "do", "data": {}}})) == 108


async def test_unknown_method_is_104(alice: Conn) -> None:
    assert error(await alice.call({"id": 3})) == 104


# --- refresh ------------------------------------------------------------------------------


async def test_refresh(alice: Conn) -> None:
    exp = int(time.time()) + 900
    reply = await alice.call({"id": 3, "refresh": {"token": token("alice", ttl=None, exp=exp)}})
    result = reply["refresh"]
    assert set(result) == {"expires", "ttl"}  # as from Centrifugo
    assert result["expires"] is True and 890 <= result["ttl"] <= 900
    assert alice.client.expire_at == exp


async def test_refresh_without_token_is_107(alice: Conn) -> None:
    assert error(await alice.call({"id": 3, "refresh": {}})) == 107


async def test_refresh_with_expired_token_is_109(alice: Conn) -> None:
    assert error(await alice.call({"id": 3, "refresh": {"token": token("alice", ttl=-5)}})) == 109
    assert alice.closed_with is None


@pytest.mark.parametrize("bad", ["garbage", token("mallory")])
async def test_refresh_with_invalid_or_foreign_token_is_3500(alice: Conn, bad: str) -> None:
    await alice.send({"id": 3, "refresh": {"token": bad}})
    assert alice.closed_with == 3500


async def test_sub_refresh(alice: Conn) -> None:
    await alice.subscribe("$s", token=sub_token("alice", "$s", ttl=60))
    exp = int(time.time()) + 600
    reply = await alice.call(
        {
            "id": 3,
            "sub_refresh": {"channel": "$s", "token": sub_token("alice", "$s", None, exp=exp)},
        }
    )
    assert reply["sub_refresh"]["expires"] is True
    assert 590 <= reply["sub_refresh"]["ttl"] <= 600
    assert alice.client.subscriptions["$s"].expire_at == exp


async def test_sub_refresh_not_subscribed_is_103(alice: Conn) -> None:
    reply = await alice.call(
        {"id": 3, "sub_refresh": {"channel": "$s", "token": sub_token("alice", "$s")}}
    )
    assert error(reply) == 103


async def test_sub_refresh_expired_is_109_and_forged_is_103(alice: Conn) -> None:
    await alice.subscribe("$s", token=sub_token("alice", "$s"))
    reply = await alice.call(
        {"id": 3, "sub_refresh": {"channel": "$s", "token": sub_token("alice", "$s", ttl=-5)}}
    )
    assert error(reply) == 109
    forged = token("alice", secret="x" * 40, channel="$s")
    reply = await alice.call({"id": 4, "sub_refresh": {"channel": "$s", "token": forged}})
    assert error(reply) == 103


# --- join / leave ------------------------------------------------------------------------


async def test_join_and_leave_pushes(alice: Conn, node: Node) -> None:
    await alice.subscribe("news", join_leave=True)
    bob = Conn(node)
    await bob.connect("bob")
    await bob.subscribe("news")
    await settle()
    joins = [r["push"] for r in alice.transport.take() if "join" in r.get("push", {})]
    assert joins == [
        {"channel": "news", "join": {"info": {"user": "bob", "client": bob.client.id}}}
    ]
    bob.client.transport_closed()
    await settle()
    leaves = [r["push"] for r in alice.transport.take() if "leave" in r.get("push", {})]
    assert [p["leave"]["info"]["user"] for p in leaves] == ["bob"]


def test_secret_is_shared_with_conftest() -> None:
    assert SECRET.startswith("unit-secret")
