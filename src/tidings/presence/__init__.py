"""Who is subscribed to a channel, with their client info."""

from tidings.presence.base import PresenceStore
from tidings.presence.memory import MemoryPresenceStore

__all__ = ["MemoryPresenceStore", "PresenceStore"]
