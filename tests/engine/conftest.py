"""Redis fixtures for the Redis engine tests (real redis-server processes)."""

from tests.redis_fixtures import *  # noqa: F403
