"""Redis fixtures for the conformance suites that run against a real redis-server."""

from tests.redis_fixtures import *  # noqa: F403
