"""Publish/subscribe between nodes: in process (memory) or through Redis."""

from tidings.broker.base import Broker, BrokerPort
from tidings.broker.memory import MemoryBroker, MemoryBrokerHub

__all__ = ["Broker", "BrokerPort", "MemoryBroker", "MemoryBrokerHub"]
