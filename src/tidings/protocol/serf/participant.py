"""What a member that is not a Serf agent needs to be a good citizen of a Serf cluster.

Serf orders membership intents and user events with two Lamport clocks. A
participant witnesses the times it hears, so its own intents come *after* what the
cluster knows (Serf ignores a leave intent not newer than the member's status
time), and it passes each user event on once.
"""

from __future__ import annotations

from tidings.protocol.memberlist.errors import DecodeError
from tidings.protocol.serf.events import RecentUserEvents
from tidings.protocol.serf.messages import (
    JoinIntent,
    LeaveIntent,
    UserEvent,
    decode_serf_message,
    encode_serf_message,
)


class LamportClock:
    __slots__ = ("time",)

    def __init__(self) -> None:
        self.time = 0

    def witness(self, seen: int) -> None:
        if seen >= self.time:
            self.time = seen + 1

    def tick(self) -> int:
        """The time for a new event of ours (then the clock moves on)."""
        now = self.time
        self.time += 1
        return now


class SerfParticipant:
    __slots__ = ("event_clock", "member_clock", "name", "recent")

    def __init__(self, name: str) -> None:
        self.name = name
        self.member_clock = LamportClock()
        self.member_clock.witness(0)  # our first intent is at least 1: Serf's zero is "none"
        self.event_clock = LamportClock()
        self.recent = RecentUserEvents()

    def receive(self, payload: bytes) -> UserEvent | None:
        """Feed a memberlist user message; the user event in it if new, else None."""
        try:
            message = decode_serf_message(payload)
        except DecodeError:
            return None
        if isinstance(message, JoinIntent | LeaveIntent):
            self.member_clock.witness(message.ltime)
        elif isinstance(message, UserEvent):
            self.event_clock.witness(message.ltime)
            if self.recent.first_time(message):
                return message
        return None

    def join_intent(self) -> bytes:
        return encode_serf_message(JoinIntent(self.member_clock.tick(), self.name))

    def leave_intent(self) -> bytes:
        """Broadcast this (and give it a gossip round) before the memberlist leave."""
        return encode_serf_message(LeaveIntent(self.member_clock.tick(), self.name))

    def user_event(self, name: str, payload: bytes = b"", coalesce: bool = False) -> bytes:
        return encode_serf_message(UserEvent(self.event_clock.tick(), name, payload, coalesce))
