"""Waiting in tests for a state that has no change signal to wait on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(check: Callable[[], object], within: float = 20.0) -> None:
    """Poll the synchronous `check` until it is true; TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - polling state that has no change signal
            await asyncio.sleep(0.02)
