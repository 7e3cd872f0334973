"""A channel: one copy of its topic's messages, each delivered to one consumer.

A channel reads its topic log from `read_seq` on, keeps what it hands out in
`in_flight` (with a deadline per message, in a heap), what waits for a time
in `deferred` (a heap by due time), and what must go out again at once in
`requeued`. Consumers receive messages while their in-flight count is below
their RDY; the channel takes them in turn (round robin) so that none starves.

Every change that matters after a crash goes to its `ChannelProgress`
(FIN, delivery, deferral). After a restart the channel starts at the
progress floor, skips what was finished, and delivers the rest again.

The channel knows no sockets and no event loop: time comes from `clock`
(monotonic seconds) and `wall_ms`, and `schedule(callback)` asks the owner to
run `callback` soon (the event loop's `call_soon`).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from tidings.queue.message import ChannelMessage, StoredMessage
from tidings.queue.progress import ChannelProgress

log = logging.getLogger(__name__)

_FETCH_BYTES = 256 * 1024


class Subscriber(Protocol):
    """What a channel needs of a consumer connection."""

    id: int
    in_flight: int
    msg_timeout: float

    def capacity(self) -> int:
        """How many more messages it may take now (RDY - in flight, 0 if blocked)."""

    def deliver(self, message: ChannelMessage) -> None:
        """Send a message frame."""

    def channel_closed(self) -> None:
        """The channel was deleted: close the connection."""


class MessageSource(Protocol):
    """What a channel needs of its topic."""

    name: str

    @property
    def committed(self) -> int:
        """One past the last message that is durable (and may be delivered)."""

    def read(self, seq: int, max_bytes: int) -> list[StoredMessage]:
        """Committed messages numbered `seq` or later."""


class MessageStateError(Exception):
    """FIN/REQ/TOUCH of a message the consumer does not hold (non-fatal for it)."""


def _wall_ms() -> int:
    return int(time.time() * 1000)


class Channel:
    """One channel of a topic."""

    def __init__(
        self,
        name: str,
        topic: MessageSource,
        progress: ChannelProgress,
        *,
        ephemeral: bool = False,
        schedule: Callable[[Callable[[], None]], object] = lambda callback: callback(),
        dead_letter: Callable[[Channel, ChannelMessage], None] | None = None,
        max_msg_timeout: float = 15 * 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.name = name
        self.topic = topic
        self.progress = progress
        self.ephemeral = ephemeral
        self._schedule = schedule
        self._dead_letter = dead_letter
        self.max_msg_timeout = max_msg_timeout
        self._clock = clock
        self._wall_ms = wall_ms
        self.consumers: dict[int, Subscriber] = {}
        self.read_seq = progress.floor
        self.in_flight: dict[int, ChannelMessage] = {}
        self.deferred: dict[int, ChannelMessage] = {}
        self.requeued: deque[ChannelMessage] = deque()
        self.dead_lettering: dict[int, ChannelMessage] = {}
        self._fetched: deque[StoredMessage] = deque()
        # (deadline, seq, attempts): one entry per delivery; a TOUCH only moves
        # `message.deadline`, and the entry is pushed again when it comes up early.
        self._timeouts: list[tuple[float, int, int]] = []
        self._due: list[tuple[int, int]] = []
        self._turn = 0
        self._pump_scheduled = False
        self.closed = False
        self.fetched_count = 0
        self.requeue_count = 0
        self.timeout_count = 0
        self._restored: set[int] = set()
        self._restore()

    # -- settings ------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self.progress.paused

    def pause(self, paused: bool) -> None:
        self.progress.paused = paused
        if not paused:
            self.wake()

    @property
    def max_attempts(self) -> int:
        return self.progress.max_attempts

    # -- consumers -----------------------------------------------------------

    def add_consumer(self, consumer: Subscriber) -> None:
        self.consumers[consumer.id] = consumer
        self.wake()

    def remove_consumer(self, consumer: Subscriber) -> None:
        """Forget a consumer; what it held goes out again at once."""
        self.consumers.pop(consumer.id, None)
        held = [m for m in self.in_flight.values() if m.consumer_id == consumer.id]
        for message in sorted(held, key=lambda m: m.seq):
            del self.in_flight[message.seq]
            self.requeued.append(message)
        consumer.in_flight = 0
        if held:
            self.wake()

    # -- delivery ------------------------------------------------------------

    def wake(self) -> None:
        """Deliver what can be delivered, soon (coalesced)."""
        if not self._pump_scheduled and not self.closed:
            self._pump_scheduled = True
            self._schedule(self.pump)

    def pump(self) -> None:
        self._pump_scheduled = False
        if self.closed or self.paused or not self.consumers:
            return
        ready = [c for c in self.consumers.values() if c.capacity() > 0]
        if not ready:
            return
        now = self._clock()
        max_attempts = self.progress.max_attempts
        while ready:
            message = self._next_message()
            if message is None:
                break
            if max_attempts and message.attempts >= max_attempts and self._dead_letter:
                self.dead_lettering[message.seq] = message
                self._dead_letter(self, message)
                continue
            self._turn = (self._turn + 1) % len(ready)
            consumer = ready[self._turn]
            message.attempts += 1
            self.progress.delivered(message.seq, message.attempts)
            message.consumer_id = consumer.id
            message.delivered_at = now
            message.deadline = now + consumer.msg_timeout
            self.in_flight[message.seq] = message
            heapq.heappush(self._timeouts, (message.deadline, message.seq, message.attempts))
            consumer.in_flight += 1
            consumer.deliver(message)
            if consumer.capacity() <= 0:
                ready.remove(consumer)
        self.progress.flush()

    def _next_message(self) -> ChannelMessage | None:
        while self.requeued:
            message = self.requeued.popleft()
            if message.body or self._reload(message):
                return message
            self.progress.finished(message.seq)  # emptied from the log meanwhile
        progress = self.progress
        while True:
            if not self._fetched:
                if self.read_seq >= self.topic.committed:
                    return None
                batch = self.topic.read(self.read_seq, _FETCH_BYTES)
                if not batch:
                    return None
                self.read_seq = batch[-1].seq + 1
                self._fetched.extend(batch)
            stored = self._fetched.popleft()
            seq = stored.seq
            if seq in progress.acked or seq in self.deferred or seq in self.dead_lettering:
                continue
            if seq in self._restored:
                self._restored.discard(seq)
                continue
            self.fetched_count += 1
            message = ChannelMessage(
                seq, stored.timestamp_ns, stored.body, progress.attempts.get(seq, 0)
            )
            due = (
                max(stored.deliver_at_ms, progress.deferred.get(seq, 0))
                if progress.deferred
                else stored.deliver_at_ms
            )
            if due and due > self._wall_ms():
                self._defer(message, due, journal=False)
                continue
            return message

    def _defer(self, message: ChannelMessage, due_ms: int, journal: bool) -> None:
        # The body stays in the log (the retention floor keeps it), not in memory.
        message.body = b""
        message.due_ms = due_ms
        self.deferred[message.seq] = message
        heapq.heappush(self._due, (due_ms, message.seq))
        self.progress.deferred_until(message.seq, due_ms, journal)

    def _restore(self) -> None:
        """After a restart: what was outstanding waits or goes out again (bodies stay on disk)."""
        now_ms = self._wall_ms()
        for seq, due in sorted(self.progress.deferred.items()):
            if seq in self.progress.acked:
                continue
            message = ChannelMessage(seq, 0, b"", self.progress.attempts.get(seq, 0))
            if seq >= self.read_seq:
                self._restored.add(seq)  # skip it when reading reaches it
            if due > now_ms:
                message.due_ms = due
                self.deferred[seq] = message
                heapq.heappush(self._due, (due, seq))
            else:
                self.requeued.append(message)

    def _reload(self, message: ChannelMessage) -> bool:
        """Read back the body of a deferred message; False if the log no longer has it."""
        found = self.topic.read(message.seq, 1)
        if not found or found[0].seq != message.seq:
            return False
        message.body = found[0].body
        message.timestamp_ns = found[0].timestamp_ns
        return True

    # -- consumer commands ---------------------------------------------------

    def _owned(self, consumer: Subscriber, seq: int) -> ChannelMessage:
        message = self.in_flight.get(seq)
        if message is None:
            raise MessageStateError("ID not in flight")
        if message.consumer_id != consumer.id:
            raise MessageStateError("client does not own message")
        return message

    def finish(self, consumer: Subscriber, seq: int) -> None:
        self._owned(consumer, seq)
        del self.in_flight[seq]
        consumer.in_flight -= 1
        self.progress.finished(seq)
        self.wake()

    def requeue(self, consumer: Subscriber, seq: int, delay_ms: int) -> None:
        message = self._owned(consumer, seq)
        del self.in_flight[seq]
        consumer.in_flight -= 1
        self.requeue_count += 1
        if delay_ms > 0:
            self._defer(message, self._wall_ms() + delay_ms, journal=True)
        else:
            self.requeued.append(message)
        self.wake()

    def touch(self, consumer: Subscriber, seq: int) -> None:
        message = self._owned(consumer, seq)
        # As nsqd: TOUCH extends a delivery up to max_msg_timeout, not beyond.
        message.deadline = min(
            self._clock() + consumer.msg_timeout, message.delivered_at + self.max_msg_timeout
        )

    def dead_lettered(self, message: ChannelMessage, ok: bool) -> None:
        """The dead-letter publish of `message` ended; if it failed, retry in a second."""
        if self.dead_lettering.pop(message.seq, None) is None:
            return
        if ok:
            self.progress.finished(message.seq)
            self.progress.flush()
        else:
            self._defer(message, self._wall_ms() + 1000, journal=False)

    # -- time ----------------------------------------------------------------

    def tick(self) -> None:
        """Expire in-flight deadlines and release due deferred messages."""
        now = self._clock()
        woke = False
        timeouts = self._timeouts
        while timeouts and timeouts[0][0] <= now:
            _, seq, attempts = heapq.heappop(timeouts)
            message = self.in_flight.get(seq)
            if message is None or message.attempts != attempts:
                continue  # finished or requeued since (a later delivery has its own entry)
            if message.deadline > now:  # touched: wait for the new deadline
                heapq.heappush(timeouts, (message.deadline, seq, attempts))
                continue
            del self.in_flight[seq]
            consumer = self.consumers.get(message.consumer_id)
            if consumer is not None:
                consumer.in_flight -= 1
            self.timeout_count += 1
            self.requeued.append(message)
            woke = True
        now_ms = self._wall_ms()
        due = self._due
        while due and due[0][0] <= now_ms:
            due_ms, seq = heapq.heappop(due)
            message = self.deferred.get(seq)
            if message is None or message.due_ms != due_ms:
                continue
            del self.deferred[seq]
            self.progress.undeferred(seq)
            if not message.body and not self._reload(message):
                continue  # emptied or deleted meanwhile
            self.requeued.append(message)
            woke = True
        if woke:
            self.wake()

    # -- state ---------------------------------------------------------------

    def floor(self) -> int:
        """Where reading resumes after a restart (what is below is finished or outstanding)."""
        if self._fetched:
            return min(self.read_seq, self._fetched[0].seq)
        return self.read_seq

    def outstanding(self) -> dict[int, int]:
        """Every unfinished record below the floor: seq -> due ms (0: at once)."""
        out = dict.fromkeys(self.in_flight, 0)
        out.update(dict.fromkeys((m.seq for m in self.requeued), 0))
        out.update(dict.fromkeys(self.dead_lettering, 0))
        out.update((seq, m.due_ms) for seq, m in self.deferred.items())
        return out

    def retention_floor(self) -> int:
        """The lowest record this channel still needs from the log."""
        held = [*self.in_flight, *self.deferred, *self.dead_lettering]
        held += [m.seq for m in self.requeued]
        return min([self.floor(), *held])

    def checkpoint(self) -> None:
        self.progress.checkpoint(self.floor(), self.outstanding())

    def checkpoint_job(self) -> Callable[[], None] | None:
        """Snapshot the progress now; write it in a worker thread (see `ChannelProgress`)."""
        return self.progress.checkpoint_job(self.floor(), self.outstanding())

    @property
    def message_count(self) -> int:
        """Messages that reached this channel (read from the topic, or waiting to be)."""
        return self.fetched_count + self.backend_depth

    @property
    def depth(self) -> int:
        return len(self.requeued) + len(self._fetched) + self.backend_depth

    @property
    def backend_depth(self) -> int:
        return max(self.topic.committed - self.read_seq, 0)

    def empty(self) -> None:
        """Drop every message, in flight and deferred included (nsqd's /channel/empty)."""
        for message in list(self.in_flight.values()) + list(self.deferred.values()):
            consumer = self.consumers.get(message.consumer_id)
            if consumer is not None and message.seq in self.in_flight:
                consumer.in_flight -= 1
            self.progress.finished(message.seq)
        for message in self.requeued:
            self.progress.finished(message.seq)
        self.in_flight.clear()
        self.deferred.clear()
        self.requeued.clear()
        self._fetched.clear()
        self._timeouts.clear()
        self._due.clear()
        self.read_seq = self.topic.committed
        self._restored.clear()
        self.progress.checkpoint(self.read_seq, {})
        self.wake()

    def close(self, delete: bool) -> None:
        """Stop; with `delete`, drop the state and close the consumers."""
        self.closed = True
        if delete:
            for consumer in list(self.consumers.values()):
                consumer.channel_closed()
            self.progress.destroy()
        else:
            self.checkpoint()
            self.progress.close()
