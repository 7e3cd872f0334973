"""The conformance checks every `UserRegister` implementation must pass.

Usage, from a test suite::

    await check_register(MemoryUserRegister)

The factory returns a fresh, empty register. Each check is also available
alone in `REGISTER_CHECKS`. Registers shared by several nodes
(`entry_ttl > 0`) also pass `check_register_expiry(pair)`, whose factory
takes a `FakeClock` and returns two registers on one engine (two nodes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from tidings.register.base import UserConnection, UserRegister
from tidings.testing.clock import FakeClock

RegisterFactory = Callable[[], UserRegister]
RegisterCheck = Callable[[RegisterFactory], Awaitable[None]]
RegisterPairFactory = Callable[[FakeClock], tuple[UserRegister, UserRegister]]


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


@asynccontextmanager
async def _open(factory: RegisterFactory) -> AsyncIterator[UserRegister]:
    register = factory()
    try:
        yield register
    finally:
        await register.close()


def _clients(found: list[UserConnection]) -> set[str]:
    return {c.client for c in found}


async def check_unknown_user(factory: RegisterFactory) -> None:
    """A user never added has no connections."""
    async with _open(factory) as register:
        found = await register.connections("nobody")
        _expect(found == [], f"an unknown user has connections {found}")


async def check_add_and_list(factory: RegisterFactory) -> None:
    """Every connection of a user, on any node, comes back with its node and info."""
    async with _open(factory) as register:
        await register.add(UserConnection("u1", "c1", "node-a", b'{"x":1}'))
        await register.add(UserConnection("u1", "c2", "node-b"))
        found = {c.client: c for c in await register.connections("u1")}
        _expect(set(found) == {"c1", "c2"}, f"u1 has connections {set(found)}")
        _expect(
            found["c1"] == UserConnection("u1", "c1", "node-a", b'{"x":1}'),
            f"c1 came back as {found['c1']}",
        )
        _expect(found["c2"].node == "node-b", f"c2 is on {found['c2'].node!r}")
        _expect(found["c2"].info == b"", f"c2's info came back as {found['c2'].info!r}")


async def check_add_again_updates(factory: RegisterFactory) -> None:
    """Adding a connection again replaces its node and info; it is still one connection."""
    async with _open(factory) as register:
        await register.add(UserConnection("u1", "c1", "node-a", b"1"))
        await register.add(UserConnection("u1", "c1", "node-b", b"2"))
        found = await register.connections("u1")
        _expect(
            found == [UserConnection("u1", "c1", "node-b", b"2")],
            f"re-adding c1 gave {found}",
        )


async def check_remove(factory: RegisterFactory) -> None:
    """`remove` forgets one connection of one user; unknown ones are no error."""
    async with _open(factory) as register:
        await register.add(UserConnection("u1", "c1", "n"))
        await register.add(UserConnection("u1", "c2", "n"))
        await register.add(UserConnection("u2", "c3", "n"))
        await register.remove("u1", "c1")
        _expect(_clients(await register.connections("u1")) == {"c2"}, "c1 survived remove")
        _expect(_clients(await register.connections("u2")) == {"c3"}, "remove touched u2")
        await register.remove("u1", "c1")
        await register.remove("nobody", "c9")
        await register.remove("u2", "c2")  # c2 is u1's, not u2's
        _expect(_clients(await register.connections("u1")) == {"c2"}, "remove crossed users")
        await register.remove("u1", "c2")
        _expect(await register.connections("u1") == [], "u1 has connections after all left")


async def check_returns_copy(factory: RegisterFactory) -> None:
    """Changing the returned list changes nothing in the register."""
    async with _open(factory) as register:
        await register.add(UserConnection("u1", "c1", "n"))
        (await register.connections("u1")).clear()
        _expect(len(await register.connections("u1")) == 1, "clearing the result emptied u1")


async def check_register_expiry(pair: RegisterPairFactory) -> None:
    """The connections of a node that stops refreshing vanish within `entry_ttl`."""
    clock = FakeClock()
    a, b = pair(clock)
    try:
        ttl = a.entry_ttl
        _expect(ttl > 0, f"{type(a).__name__} has no entry_ttl: it cannot expire entries")
        await a.add(UserConnection("u1", "c1", "node-a"))
        await b.add(UserConnection("u1", "c2", "node-b"))
        _expect(_clients(await a.connections("u1")) == {"c1", "c2"}, "A does not see B's entry")
        clock.advance(ttl * 0.6)
        await b.refresh()
        await a.close()  # node A dies
        _expect(len(await b.connections("u1")) == 2, "an entry vanished before its entry_ttl")
        clock.advance(ttl * 0.6)
        found = _clients(await b.connections("u1"))
        _expect(found == {"c2"}, f"after the dead node's ttl, u1 has {found}")
    finally:
        await b.close()


async def check_register_node_gone(pair: RegisterPairFactory) -> None:
    """After `node_gone(n)`, connections on node n are left out at once; `node_back` undoes it."""
    a, b = pair(FakeClock())
    try:
        await a.add(UserConnection("u1", "c1", "node-a"))
        await b.add(UserConnection("u1", "c2", "node-b"))
        _expect(_clients(await b.connections("u1")) == {"c1", "c2"}, "a connection is missing")
        b.node_gone("node-a")
        got = _clients(await b.connections("u1"))
        _expect(got == {"c2"}, f"after node_gone(node-a), connections are {got}")
        b.node_back("node-a")
        await a.refresh()
        got = _clients(await b.connections("u1"))
        _expect(got == {"c1", "c2"}, f"after node_back and a refresh, connections are {got}")
    finally:
        await a.close()
        await b.close()


REGISTER_CHECKS: tuple[RegisterCheck, ...] = (
    check_unknown_user,
    check_add_and_list,
    check_add_again_updates,
    check_remove,
    check_returns_copy,
)


async def check_register(factory: RegisterFactory) -> None:
    """Run every check in `REGISTER_CHECKS`; raises AssertionError on the first failure."""
    for check in REGISTER_CHECKS:
        await check(factory)
