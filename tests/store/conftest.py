"""Redis fixtures for the Redis store tests (real redis-server processes)."""

from tests.redis_fixtures import *  # noqa: F403
