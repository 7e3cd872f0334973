"""The hub's indexes: clients, users, channel subscribers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tidings.core.client import Client
from tidings.core.hub import Hub
from tidings.core.node import Node
from tidings.testing import MemoryTransport


@pytest.fixture
def make_client(node: Node) -> Callable[[str], Client]:
    def make(user: str) -> Client:
        client = Client(node, MemoryTransport(), node.codec)
        client.user = user
        return client

    return make


def test_add_and_look_up(make_client: Callable[[str], Client]) -> None:
    hub = Hub()
    a, b, c = make_client("u1"), make_client("u1"), make_client("u2")
    for client in (a, b, c):
        hub.add(client)
    assert hub.client(a.id) is a
    assert hub.client("nope") is None
    assert set(hub.clients()) == {a, b, c}
    assert set(hub.user_clients("u1")) == {a, b}
    assert hub.user_clients("u2") == [c]
    assert hub.user_clients("nobody") == []
    assert (hub.num_clients, hub.num_users) == (3, 2)


def test_remove_reports_last_connection_of_user(make_client: Callable[[str], Client]) -> None:
    hub = Hub()
    a, b = make_client("u1"), make_client("u1")
    hub.add(a)
    hub.add(b)
    assert hub.remove(a) is False
    assert hub.remove(b) is True
    assert hub.remove(b) is False, "removing twice is a no-op"
    assert (hub.num_clients, hub.num_users) == (0, 0)
    assert hub.user_clients("u1") == []


def test_clients_is_a_snapshot(make_client: Callable[[str], Client]) -> None:
    hub = Hub()
    a = make_client("u1")
    hub.add(a)
    snapshot = hub.clients()
    hub.remove(a)
    assert list(snapshot) == [a]


def test_subscribe_and_unsubscribe(make_client: Callable[[str], Client]) -> None:
    hub = Hub()
    a, b = make_client("u1"), make_client("u2")
    assert hub.subscribe("news", a) is True
    assert hub.subscribe("news", a) is False, "already subscribed"
    assert hub.subscribe("news", b) is True
    assert hub.subscribe("chat", a) is True
    assert list(hub.subscribers("news")) == [a, b]
    assert hub.num_subscribers("news") == 2
    assert (hub.num_channels, hub.num_subs) == (2, 3)
    assert hub.unsubscribe("news", a) is True
    assert hub.unsubscribe("news", a) is False
    assert hub.unsubscribe("nowhere", a) is False
    assert hub.num_subs == 2
    assert hub.unsubscribe("news", b) is True
    assert hub.num_subscribers("news") == 0
    assert list(hub.subscribers("news")) == []
    assert hub.num_channels == 1, "a channel without subscribers is forgotten"


def test_channels_with_glob(make_client: Callable[[str], Client]) -> None:
    hub = Hub()
    a, b = make_client("u1"), make_client("u2")
    hub.subscribe("chat:1", a)
    hub.subscribe("chat:1", b)
    hub.subscribe("chat:2", a)
    hub.subscribe("news", b)
    assert hub.channels() == {"chat:1": 2, "chat:2": 1, "news": 1}
    assert hub.channels("chat:*") == {"chat:1": 2, "chat:2": 1}
    assert hub.channels("Chat:*") == {}, "the glob is case-sensitive"
    assert hub.channels("n?ws") == {"news": 1}


def test_one_subscriber_or_connection_needs_no_dict(make_client: Callable[[str], Client]) -> None:
    """A lone subscriber (a personal channel) or a user's only connection maps to the client."""
    hub = Hub()
    a, b = make_client("u1"), make_client("u1")
    hub.add(a)
    assert hub._users["u1"] is a and hub.num_user_clients("u1") == 1
    hub.add(b)
    assert set(hub.user_clients("u1")) == {a, b} and hub.num_user_clients("u1") == 2
    assert hub.remove(a) is False
    assert hub._users["u1"] is b, "back to one connection: back to the client itself"
    assert hub.subscribe("c", a) is True
    assert hub._channels["c"] is a
    assert hub.subscribe("c", a) is False
    assert list(hub.subscribers("c")) == [a] and hub.num_subscribers("c") == 1
    assert hub.subscribe("c", b) is True
    assert set(hub.subscribers("c")) == {a, b} and hub.channels() == {"c": 2}
    assert hub.unsubscribe("c", a) is True
    assert hub._channels["c"] is b and hub.channels() == {"c": 1}
    assert hub.unsubscribe("c", a) is False
    assert hub.unsubscribe("c", b) is True
    assert not hub.subscribers("c") and hub.num_subs == 0 and hub.num_channels == 0
