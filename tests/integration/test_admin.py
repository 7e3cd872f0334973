"""The admin web UI of a real `tidings serve`, in headless Chromium (Debian's, via Playwright).

A centrifuge-python client is connected and subscribed while an operator logs
in, sees the node, publishes to the client's channel from the form (the
client gets it), checks its delivery status, and disconnects the user.
Screenshots go to tests/artifacts/admin/ (git-ignored).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import OPEN_CHANNEL, ServerProcess
from tests.integration.support.sdk import TIMEOUT, Sdk

pytestmark = [pytest.mark.timeout(120)]

from playwright.async_api import Browser, Page, expect  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "admin"
PASSWORD = "correct horse battery staple"
TIMEOUT_MS = 15_000


@pytest.fixture
def admin_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory(
        {
            "admin_password": PASSWORD,
            "admin_secret": "admin-secret-0123456789",
            "channel": OPEN_CHANNEL,
        }
    )


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_operator_session(admin_server: ServerProcess, browser: Browser) -> None:
    sdk = Sdk(admin_server.ws_url, admin_server.token("dana"), within=TIMEOUT)
    await sdk.connect()
    _, rec = await sdk.subscribed("news")
    page = await browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(f"http://127.0.0.1:{admin_server.api_port}/admin")
        await page.fill("#password", "wrong")
        await page.click("#login-form button")
        await expect(page.locator("#login-error")).to_have_text("wrong password")
        await page.fill("#password", PASSWORD)
        await page.click("#login-form button")
        await expect(page.locator("#app")).to_be_visible()
        # The node, with the SDK client counted, and its channel listed.
        await expect(page.locator("#nodes tbody tr")).to_have_count(1)
        await expect(page.locator("#num-clients")).to_have_text("1")
        await expect(page.locator("#channels tbody")).to_contain_text("news")
        await shot(page, "overview")

        await page.fill("#publish-channel", "news")
        await page.fill("#publish-data", '{"text": "from the admin UI"}')
        await page.click("#publish-form button")
        await expect(page.locator("#publish-result")).to_contain_text("Published to news")
        [pub] = await rec.wait("publication")
        assert pub.pub.data == {"text": "from the admin UI"}
        await page.click("#delivery-form button")  # channel and offset filled in by publish
        await expect(page.locator("#delivery-result")).to_contain_text('"stored": true')
        await shot(page, "published")

        await page.fill("#user-id", "dana")
        await page.click("#user-form button[type=submit]")
        await expect(page.locator("#connections tbody tr")).to_have_count(1)
        await expect(page.locator("#connections tbody")).to_contain_text(sdk.id)
        await shot(page, "user")
        await page.click("#connections tbody button")
        await expect(page.locator("#user-result")).to_contain_text(f"Disconnected {sdk.id}")
        await sdk.rec.wait("disconnected", within=TIMEOUT)
        await expect(page.locator("#connections tbody tr")).to_have_count(0)
        await shot(page, "kicked")
        assert errors == []
    finally:
        await page.close()
        await sdk.close()


async def post(url: str, body: dict[str, Any], token: str = "") -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"token {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as r:
        return r.status, await r.json()


async def test_the_ui_refuses_requests_without_a_valid_token(admin_server: ServerProcess) -> None:
    base = f"http://127.0.0.1:{admin_server.api_port}/admin"
    status, _ = await post(f"{base}/api/info", {})
    assert status == 401
    status, _ = await post(f"{base}/api/info", {}, token="1999999999.abc.forged")
    assert status == 401
    status, reply = await post(f"{base}/login", {"password": PASSWORD})
    assert status == 200
    token = reply["token"]
    status, reply = await post(f"{base}/api/info", {}, token=token)
    assert status == 200 and reply["result"]["nodes"]
    expires, nonce, signature = token.split(".")
    status, _ = await post(
        f"{base}/api/info", {}, token=f"{int(expires) + 999}.{nonce}.{signature}"
    )
    assert status == 401  # a changed expiry breaks the signature
    # Only the admin methods: not the debug ones, not the API key's whole surface.
    status, reply = await post(f"{base}/api/debug_tasks", {}, token=token)
    assert status == 404
    # The API key does not open the UI, and the UI token does not open the API.
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"token {token}"}
        async with http.post(f"{admin_server.api_url}/info", json={}, headers=headers) as r:
            assert r.status == 401


async def test_guessing_is_slowed_down(admin_server: ServerProcess) -> None:
    base = f"http://127.0.0.1:{admin_server.api_port}/admin"
    statuses = [(await post(f"{base}/login", {"password": f"guess{n}"}))[0] for n in range(15)]
    assert statuses[:10] == [401] * 10
    assert 429 in statuses[10:]
    # While throttled even the right password waits its turn.
    status, _ = await post(f"{base}/login", {"password": PASSWORD})
    assert status == 429


async def test_admin_is_off_without_password(server: ServerProcess) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{server.api_port}/admin") as r,
    ):
        assert r.status == 404
