"""The queue admin UI in headless Chromium against `tidings lookup` and a queue node.

The queue node, real nsqd or `tidings queue`, registers with `tidings lookup`;
`tidings queue-admin` finds it there and shows its topic and channel. The test
pauses the channel, cancels then confirms its deletion, and checks each step in
the node's own `/stats`. Screenshots go to tests/artifacts/queue-admin/<node>/
(git-ignored). Chromium is Debian's /usr/bin/chromium.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import free_port
from tests.peers.nsq_processes import (
    NsqProcess,
    http_call,
    start_nsqd,
    start_tidings_lookup,
    start_tidings_queue,
    wait_for,
)

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "queue-admin"
TIMEOUT_MS = 15_000

pytestmark = [pytest.mark.timeout(120)]


@pytest.fixture(params=["nsqd", "tidings-queue"])
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[NsqProcess, NsqProcess]]:
    lookup = start_tidings_lookup(tmp_path)
    start = start_nsqd if request.param == "nsqd" else start_tidings_queue
    nsqd = start(tmp_path, [lookup.tcp_address])
    wait_for(lambda: lookup.get("/nodes")[1]["producers"], what="nsqd registered")
    yield lookup, nsqd
    nsqd.stop()
    lookup.stop()


@pytest.fixture
def admin_url(tmp_path: Path, cluster: tuple[NsqProcess, NsqProcess]) -> Iterator[str]:
    lookup, _ = cluster
    port = free_port()
    log_path = tmp_path / "queue-admin.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                *("-m", "tidings", "queue-admin", f"--http-address=127.0.0.1:{port}"),
                f"--lookupd-http-address={lookup.http_address}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while "ready" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "queue-admin did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1200, "height": 640})
    tab = await context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    await context.close()
    assert errors == []


def channel_stats(nsqd: NsqProcess, topic: str) -> dict[str, dict[str, Any]]:
    (entry,) = [t for t in nsqd.get("/stats?format=json")[1]["topics"] if t["topic_name"] == topic]
    return {c["channel_name"]: c for c in entry["channels"]}


def publish(nsqd: NsqProcess, body: str) -> int:
    return http_call(nsqd.http_port, "/pub?topic=orders", method="POST", data=body.encode())[0]


async def shot(page: Page, node: NsqProcess, name: str) -> None:
    folder = ARTIFACTS / node.name
    folder.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def test_pause_and_delete_with_confirmation(
    page: Page, admin_url: str, cluster: tuple[NsqProcess, NsqProcess]
) -> None:
    _, nsqd = cluster
    assert http_call(nsqd.http_port, "/topic/create?topic=orders")[0] == 200
    assert http_call(nsqd.http_port, "/channel/create?topic=orders&channel=billing")[0] == 200
    for i in range(5):
        assert publish(nsqd, f"message {i}") == 200

    await page.goto(admin_url)
    await expect(page.locator(f'#nodes tr[data-node="{nsqd.http_address}"]')).to_be_visible()
    billing = page.locator('#topics tr.channel[data-topic="orders"][data-channel="billing"]')
    await expect(billing.locator("td.depth")).to_have_text("5")
    await expect(billing.locator("td.state")).to_have_text("active")
    await shot(page, nsqd, "01-overview")

    # Publishing shows up as a rate (two polls, at least a second apart, see the count grow).
    topic_row = page.locator('#topics tr.topic[data-topic="orders"]')
    for i in range(20):
        assert publish(nsqd, f"more {i}") == 200
    await expect(billing.locator("td.depth")).to_have_text("25")
    await expect(topic_row.locator("td.rate")).not_to_have_text("0.0")

    await billing.get_by_role("button", name="Pause").click()
    await expect(billing.locator("td.state")).to_have_text("paused")
    assert channel_stats(nsqd, "orders")["billing"]["paused"] is True
    await shot(page, nsqd, "02-paused")

    dialog = page.locator("#confirm")
    await billing.get_by_role("button", name="Delete").click()
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Delete channel orders/billing?")
    await shot(page, nsqd, "03-confirm-delete")
    await page.click("#confirm-cancel")
    await expect(dialog).to_be_hidden()
    await page.wait_for_timeout(500)  # nothing must happen: give a wrong request time to land
    assert "billing" in channel_stats(nsqd, "orders")

    await billing.get_by_role("button", name="Delete").click()
    await page.click("#confirm-ok")
    await expect(billing).to_have_count(0)
    assert "billing" not in channel_stats(nsqd, "orders")
    await expect(topic_row).to_be_visible()
    await shot(page, nsqd, "04-deleted")
