"""Node fixtures shared with tests/core."""

from tests.core.conftest import node_factory

__all__ = ["node_factory"]
