"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium, driven by Playwright.

Never a Playwright download: `make test` installs Chromium and vendors the npm
SDK (scripts/setup-test-deps.sh); a missing one is a failed set-up, reported
as such, never a skipped test. The `browser` fixture (tests/integration/conftest.py)
launches one per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
VENDOR = Path(__file__).resolve().parents[3] / "src/tidings/demo/static/vendor"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def assert_sdk_vendored(*builds: str) -> None:
    """Chromium is installed and the SDK builds named (`centrifuge.js`, ...) are vendored."""
    assert CHROMIUM.exists(), "no /usr/bin/chromium: run scripts/setup-test-deps.sh"
    for name in builds:
        assert (VENDOR / name).exists(), f"{name} not vendored: run scripts/setup-test-deps.sh"


@asynccontextmanager
async def chromium(args: list[str] = CHROMIUM_ARGS) -> AsyncIterator[Browser]:
    """A headless Chromium launched with `args`, closed on the way out."""
    assert_sdk_vendored()  # Chromium itself
    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        try:
            yield instance
        finally:
            await instance.close()
