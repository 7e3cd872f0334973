"""Redis fixtures for the broker tests (real redis-server processes)."""

from tests.redis_fixtures import *  # noqa: F403
