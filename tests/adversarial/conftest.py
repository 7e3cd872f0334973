"""The in-process node fixtures of tests/core, for the adversarial unit tests."""

from tests.core.conftest import node, node_factory

__all__ = ["node", "node_factory"]
