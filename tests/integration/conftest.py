"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cent import AsyncClient

from tests.conftest import ServerProcess
from tests.integration.support.sdk import TIMEOUT


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[AsyncClient]:
    """A `cent` client of the server API of `server`."""
    client = AsyncClient(server.api_url, server.api_key, timeout=TIMEOUT)
    yield client
    await client.close()
