"""History streams: every publication gets an offset; the stream has an epoch."""

from tidings.store.base import HistoryStore, Position, UnrecoverablePosition
from tidings.store.memory import MemoryHistoryStore

__all__ = ["HistoryStore", "MemoryHistoryStore", "Position", "UnrecoverablePosition"]
