"""The chat room demo in real headless Chromium, driven by Playwright, with the npm SDK.

Each test starts `tidings serve --demo` and opens the page (`/`) in one
browser context per person, as separate people on separate machines would.
Screenshots go to tests/artifacts/browser/ (git-ignored). Chromium is
Debian's (/usr/bin/chromium), never a Playwright download; `make test`
installs it and the SDK with scripts/setup-test-deps.sh.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import ServerProcess
from tests.integration.support.api import api_body as api
from tests.integration.support.browser import assert_sdk_vendored

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
TIMEOUT_MS = 15_000

pytestmark = [pytest.mark.timeout(120)]

# `make test` installs all of these (scripts/setup-test-deps.sh); a missing one is a
# failed set-up, reported as such, never a skipped test.
from playwright.async_api import (  # noqa: E402
    Browser,
    BrowserContext,
    Page,
    expect,
)


@pytest.fixture(autouse=True, scope="module")
def browser_dependencies() -> None:
    assert_sdk_vendored("centrifuge.js", "centrifuge.protobuf.js")


@pytest.fixture
def demo_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    """A demo node; the `chat` namespace comes from demo mode alone."""
    return server_factory({"demo": True})


class Room:
    """People in the chat room, each in their own browser context."""

    def __init__(self, browser: Browser, server: ServerProcess) -> None:
        self.browser = browser
        self.server = server
        self.contexts: dict[str, BrowserContext] = {}
        self.console: dict[str, list[str]] = {}

    def url(self, query: str = "") -> str:
        return f"http://127.0.0.1:{self.server.port}/{query}"

    async def open(self, name: str, query: str = "") -> Page:
        """A page at the join form, not yet joined."""
        context = await self.browser.new_context(viewport={"width": 960, "height": 600})
        self.contexts[name] = context
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        logs = self.console.setdefault(name, [])
        page.on("console", lambda msg: logs.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: logs.append(f"pageerror: {exc}"))
        await page.goto(self.url(query))
        return page

    async def join(self, name: str, query: str = "") -> Page:
        page = await self.open(name, query)
        await expect(page.locator("#join-button")).to_be_enabled()
        await page.fill("#name", name)
        await page.click("#join-button")
        await expect(page.locator("#state")).to_have_attribute("data-state", "connected")
        await expect(page.locator("#send-button")).to_be_enabled()
        # History and presence are loaded once subscribed; wait for the page to see itself.
        await expect(page.locator("#presence li", has_text=name)).to_have_count(1)
        return page

    async def close(self) -> None:
        for context in self.contexts.values():
            await context.close()


@pytest.fixture
async def room(browser: Browser, demo_server: ServerProcess) -> AsyncIterator[Room]:
    r = Room(browser, demo_server)
    try:
        yield r
    finally:
        await r.close()


async def say(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


async def sees(page: Page, text: str) -> None:
    """`text` shows exactly once among the messages."""
    line = page.locator("#messages li.message .text", has_text=text)
    await expect(line).to_have_count(1)


async def message_texts(page: Page) -> list[str]:
    return list(await page.locator("#messages li.message .text").all_inner_texts())


async def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path))
    return path


async def chat_value(page: Page, expression: str) -> Any:
    return await page.evaluate(f"() => window.tidingsChat.{expression}")


async def test_two_pages_chat(room: Room) -> None:
    alice = await room.join("alice")
    bob = await room.join("bob")
    for page in (alice, bob):
        await expect(page.locator("#presence li")).to_have_text(["alice", "bob"])
        await expect(page.locator("#presence-count")).to_have_text("2")
    await expect(alice.locator("#messages li.system", has_text="bob joined")).to_have_count(1)

    await say(alice, "hello bob")
    await sees(bob, "hello bob")
    await sees(alice, "hello bob")
    await say(bob, "hi alice!")
    await sees(alice, "hi alice!")
    for page in (alice, bob):
        assert await message_texts(page) == ["hello bob", "hi alice!"]
        users = await page.locator("#messages li.message .user").all_inner_texts()
        assert users == ["alice", "bob"]
    # Text is shown as text, never as markup.
    await say(bob, "<b>bold</b> & <script>x</script>")
    await sees(alice, "<b>bold</b> & <script>x</script>")
    assert await alice.locator("#messages b").count() == 0

    await shot(alice, "two-pages-alice")
    await shot(bob, "two-pages-bob")


async def test_late_joiner_sees_history_and_presence(room: Room) -> None:
    alice = await room.join("alice")
    bob = await room.join("bob")
    await say(alice, "first")
    await sees(bob, "first")
    await say(bob, "second")
    await sees(alice, "second")
    # Over the 50 the room keeps: a late joiner sees the newest 50, oldest first.
    for i in range(55):
        await api(
            room.server, "publish", {"channel": "chat:lobby", "data": {"text": f"bulk {i:02d}"}}
        )
    await sees(alice, "bulk 54")

    carol = await room.join("carol")
    await expect(carol.locator("#messages li.message")).to_have_count(50)
    texts = await message_texts(carol)
    assert texts == [f"bulk {i:02d}" for i in range(5, 55)]
    assert await chat_value(carol, "historyLoads") == 1
    await expect(carol.locator("#presence li")).to_have_text(["alice", "bob", "carol"])
    for page in (alice, bob):
        await expect(page.locator("#presence li")).to_have_text(["alice", "bob", "carol"])
    await shot(carol, "late-joiner-carol")

    await say(carol, "hi, I read the backlog")
    await sees(alice, "hi, I read the backlog")
    await sees(bob, "hi, I read the backlog")

    # Carol leaves: the others see it in the list and in the log.
    await room.contexts.pop("carol").close()
    for page in (alice, bob):
        await expect(page.locator("#presence li")).to_have_text(["alice", "bob"])
        await expect(page.locator("#messages li.system", has_text="carol left")).to_have_count(1)


async def test_server_disconnect_recovers_missed_messages(room: Room) -> None:
    alice = await room.join("alice")
    bob = await room.join("bob")
    await say(bob, "before")
    await sees(alice, "before")

    await api(
        room.server,
        "disconnect",
        {"user": "alice", "disconnect": {"code": 3011, "reason": "force reconnect"}},
    )
    # The SDK waits at least 500 ms before it reconnects: these land while alice is away.
    for i in range(3):
        await api(
            room.server,
            "publish",
            {"channel": "chat:lobby", "data": {"text": f"missed {i}", "user": "api"}},
        )
    await expect(alice.locator("#state")).to_have_attribute("data-state", "connecting")
    await say(bob, "after")
    await expect(alice.locator("#state")).to_have_attribute("data-state", "connected")
    for text in ("missed 0", "missed 1", "missed 2", "after"):
        await sees(alice, text)
    assert await message_texts(alice) == ["before", "missed 0", "missed 1", "missed 2", "after"]
    states = await chat_value(alice, "states")
    assert states[-2:] == ["connecting", "connected"], states
    assert await chat_value(alice, "recoveries") == 1
    assert await chat_value(alice, "historyLoads") == 1  # recovered, not reloaded
    await expect(alice.locator("#messages li.system", has_text="recovered")).to_have_count(1)
    await shot(alice, "server-disconnect-recovered-alice")


async def test_offline_page_recovers_missed_messages(room: Room) -> None:
    alice = await room.join("alice")
    bob = await room.join("bob")
    await say(alice, "going offline soon")
    await sees(bob, "going offline soon")

    await room.contexts["alice"].set_offline(True)  # CDP Network.emulateNetworkConditions
    await expect(alice.locator("#state")).to_have_attribute("data-state", "connecting")
    await expect(bob.locator("#presence li")).to_have_text(["bob"])
    await expect(bob.locator("#messages li.system", has_text="alice left")).to_have_count(1)
    for i in range(3):
        await say(bob, f"while you were away {i}")
    await sees(bob, "while you were away 2")
    await shot(alice, "offline-alice-connecting")
    await asyncio.sleep(0.5)
    await expect(alice.locator("#state")).to_have_attribute("data-state", "connecting")

    await room.contexts["alice"].set_offline(False)
    await expect(alice.locator("#state")).to_have_attribute("data-state", "connected")
    for i in range(3):
        await sees(alice, f"while you were away {i}")
    assert await message_texts(alice) == ["going offline soon"] + [
        f"while you were away {i}" for i in range(3)
    ]
    assert await chat_value(alice, "recoveries") == 1
    await expect(alice.locator("#presence li")).to_have_text(["alice", "bob"])
    await say(alice, "back")
    await sees(bob, "back")
    await shot(alice, "offline-alice-recovered")


async def test_terminal_disconnect_shows_disconnected(room: Room) -> None:
    alice = await room.join("alice")
    await api(
        room.server,
        "disconnect",
        {"user": "alice", "disconnect": {"code": 3503, "reason": "force disconnect"}},
    )
    state = alice.locator("#state")
    await expect(state).to_have_attribute("data-state", "disconnected")
    await expect(state).to_contain_text("force disconnect")
    await expect(alice.locator("#send-button")).to_be_disabled()
    await shot(alice, "terminal-disconnect-alice")


async def test_page_says_when_the_sdk_is_missing(room: Room) -> None:
    context = await room.browser.new_context()
    room.contexts["nosdk"] = context
    await context.route("**/static/centrifuge.js", lambda route: route.fulfill(status=404))
    page = await context.new_page()
    await page.goto(room.url())
    await expect(page.locator("#sdk-missing")).to_be_visible()
    await expect(page.locator("#sdk-missing")).to_contain_text("SDK is not installed")
    await expect(page.locator("#join-button")).to_be_disabled()
    await shot(page, "sdk-missing")


async def test_protobuf_build_chats_with_json_build(room: Room) -> None:
    alice = await room.join("alice", "?format=protobuf")
    assert await chat_value(alice, "protocol") == "protobuf"
    await expect(alice.locator("#protocol")).to_have_text("protobuf")
    await say(alice, "from protobuf")
    await sees(alice, "from protobuf")
    bob = await room.join("bob")
    await sees(bob, "from protobuf")  # history, across encodings
    await say(bob, "from json")
    await sees(alice, "from json")
    await expect(alice.locator("#presence li")).to_have_text(["alice", "bob"])

    carol = await room.join("carol", "?format=protobuf")
    assert await message_texts(carol) == ["from protobuf", "from json"]
    await room.contexts["alice"].set_offline(True)
    await expect(alice.locator("#state")).to_have_attribute("data-state", "connecting")
    await say(carol, "while alice is offline")
    await sees(bob, "while alice is offline")
    await room.contexts["alice"].set_offline(False)
    await sees(alice, "while alice is offline")
    assert await chat_value(alice, "recoveries") == 1
    await shot(alice, "protobuf-alice")


_EVENT_SOURCE = """(url) => {
  const seen = { ns: [], ids: [], connects: 0, errors: 0 };
  window.sse = seen;
  const source = new EventSource(url);
  source.onerror = () => { seen.errors += 1; };
  source.onmessage = (event) => {
    const push = JSON.parse(event.data);
    if (push.connect) {
      seen.connects += 1;
      const news = (push.connect.subs || {}).news || {};
      for (const pub of news.publications || []) seen.ns.push(pub.data.n);
    } else if (push.pub) {
      seen.ns.push(push.pub.data.n);
      seen.ids.push(event.lastEventId);
    }
  };
}"""


async def until(page: Page, condition: str, within: float = 20.0) -> dict[str, Any]:
    """Wait until `window.<condition>` holds; the page's `window.sse` (also in the failure)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        ok, state = await page.evaluate(f"() => [Boolean(window.{condition}), window.sse]")
        if ok:
            return dict(state)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {condition}: {state}")
        await asyncio.sleep(0.05)


async def test_event_source_resumes_with_last_event_id(
    browser: Browser, server_factory: Callable[..., ServerProcess]
) -> None:
    """A plain browser `EventSource` on /connection/uni_sse reconnects by itself and,
    with the `Last-Event-ID` it sends, misses nothing that was published meanwhile."""
    server = server_factory(
        {
            "demo": True,
            "personal_channel": False,
            "channel": {"history_size": 100, "history_ttl": "5m", "force_recovery": True},
        }
    )
    context = await browser.new_context()
    try:
        page = await context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        await page.goto(f"http://127.0.0.1:{server.port}/")
        token = server.token("sse-reader", channels=["news"])
        query = urlencode({"cf_connect": json.dumps({"token": token}), "cf_channel": "news"})
        await page.evaluate(_EVENT_SOURCE, f"/connection/uni_sse?{query}")
        await until(page, "sse.connects === 1")

        async def publish(n: int) -> str:
            body = await api(server, "publish", {"channel": "news", "data": {"n": n}})
            return str(body["result"]["epoch"])

        await publish(1)
        epoch = await publish(2)
        seen = await until(page, "sse.ns.length === 2")
        assert seen["ids"] == [f"1:{epoch}", f"2:{epoch}"], seen

        # The server drops the stream; EventSource retries after its own delay (~3 s).
        await api(
            server,
            "disconnect",
            {"user": "sse-reader", "disconnect": {"code": 3011, "reason": "force reconnect"}},
        )
        await publish(3)
        await publish(4)
        await until(page, "sse.connects === 2")
        await publish(5)
        seen = await until(page, "sse.ns.length >= 5")
        assert seen["ns"] == [1, 2, 3, 4, 5], seen
        assert seen["ids"][-1] == f"5:{epoch}", seen
    finally:
        await context.close()
