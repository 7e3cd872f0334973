"""The queue node: its topics and channels, publishing, and what runs on a timer.

The TCP and HTTP front ends both call `publish`, which returns None when the
messages are already durable, or a future to await before answering. The
node also owns the fsync policy (`Committer`), the disk budget
(`retention_bytes`), the dead-letter topics, the lookupd registrations and
the replica link.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from tidings.protocol.nsq.names import is_ephemeral, is_valid_name
from tidings.queue.channel import Channel
from tidings.queue.committer import Committer
from tidings.queue.log import FileLog, LogWriteError, MemoryLog, MessageLog
from tidings.queue.message import ChannelMessage
from tidings.queue.progress import ChannelProgress
from tidings.queue.settings import QueueSettings
from tidings.queue.topic import Topic

log = logging.getLogger(__name__)

_TOPIC_PREFIX = "t-"
_RECORD_OVERHEAD = 16 + 16  # log header + timestamp/deliver-at fields
DEAD_LETTER_SUFFIX = ".dead"


class PublishError(Exception):
    """A publish was refused or failed; nothing of it was acknowledged."""


class LookupHook(Protocol):
    """Registrations with lookup services (see `lookup_peer.LookupPeers`)."""

    def register(self, topic: str, channel: str | None) -> None: ...

    def unregister(self, topic: str, channel: str | None) -> None: ...


class NoLookup:
    def register(self, topic: str, channel: str | None) -> None:
        return None

    def unregister(self, topic: str, channel: str | None) -> None:
        return None


class ReplicaHook(Protocol):
    """The primary's side of replication (see `replication.ReplicaLink`)."""

    def appended(self, topic: str) -> None: ...

    async def wait(self, topic: str, seq: int) -> None: ...

    def topic_deleted(self, topic: str) -> None: ...


def _write_checkpoints(jobs: list[Callable[[], None]]) -> None:
    for job in jobs:
        try:
            job()
        except OSError:  # a deleted channel's directory, a full disk: the journal still has it
            log.exception("checkpoint write failed")


class QueueNode:
    """Topics, channels and publishing of one `tidings queue` process."""

    def __init__(self, settings: QueueSettings, lookup: LookupHook | None = None) -> None:
        self.settings = settings
        self.topics: dict[str, Topic] = {}
        self.committer = Committer(settings.fsync)
        self.lookup: LookupHook = lookup or NoLookup()
        self.replica: ReplicaHook | None = None
        self.primaries = 0  # connected primaries (this node is then a replica)
        self.disk_bytes = 0
        self.start_time = int(time.time())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.topics_dir = settings.data_path / "topics"
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="queue-checkpoint")

    # -- lifecycle -----------------------------------------------------------

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Load the topics and channels found under the data path."""
        self._loop = loop
        self.topics_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.topics_dir.iterdir()):
            name = path.name[len(_TOPIC_PREFIX) :]
            if not path.name.startswith(_TOPIC_PREFIX) or not is_valid_name(name):
                continue
            topic = self._new_topic(name)
            for channel in topic.stored_channel_names():
                if is_valid_name(channel):
                    self.channel(topic, channel)
            log.info(
                "topic %s: %d messages on disk", name, topic.log.next_seq - topic.log.first_seq
            )

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        for topic in self.topics.values():
            topic.close(delete=False)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- topics and channels -------------------------------------------------

    def _new_topic(self, name: str, announce: bool = True) -> Topic:
        ephemeral = is_ephemeral(name)
        message_log: MessageLog
        directory: Path | None
        if ephemeral:
            message_log, directory = MemoryLog(), None
        else:
            directory = self.topics_dir / (_TOPIC_PREFIX + name)
            message_log = FileLog(directory / "log", self.settings.segment_bytes)
            self.disk_bytes += message_log.size_bytes
        topic = Topic(
            name,
            message_log,
            directory,
            ephemeral=ephemeral,
            cache_size=self.settings.mem_queue_size,
        )
        self.topics[name] = topic
        topic.save_meta()
        if announce:
            self.lookup.register(name, None)
        return topic

    def topic(self, name: str, announce: bool = True) -> Topic:
        """The topic called `name`, created if needed (name already validated).

        `announce=False` keeps it from lookupd: a replica holds copies it does not serve
        until consumers come to it (their channels announce it then).
        """
        topic = self.topics.get(name)
        return topic if topic is not None else self._new_topic(name, announce)

    def channel(self, topic: Topic, name: str) -> Channel:
        """The channel `name` of `topic`, created if needed."""
        channel = topic.channels.get(name)
        if channel is not None:
            return channel
        ephemeral = topic.ephemeral or is_ephemeral(name)
        directory = None if ephemeral else topic.channel_directory(name)
        progress = ChannelProgress(
            directory,
            topic.start_of_new_channel(name),
            fsync=self.settings.fsync != "never",
            max_attempts=self.settings.max_attempts,
        )
        loop = self._loop
        channel = Channel(
            name,
            topic,
            progress,
            ephemeral=ephemeral,
            schedule=loop.call_soon if loop is not None else (lambda callback: callback()),
            dead_letter=self._dead_letter,
            max_msg_timeout=self.settings.max_msg_timeout,
        )
        topic.add_channel(channel)
        self.lookup.register(topic.name, name)
        return channel

    def delete_topic(self, name: str) -> bool:
        topic = self.topics.pop(name, None)
        if topic is None:
            return False
        if not topic.ephemeral:
            self.disk_bytes -= topic.log.size_bytes
        topic.close(delete=True)
        self.lookup.unregister(name, None)
        if self.replica is not None:
            self.replica.topic_deleted(name)
        return True

    def delete_channel(self, topic: Topic, name: str) -> bool:
        if topic.remove_channel(name, delete=True) is None:
            return False
        self.lookup.unregister(topic.name, name)
        return True

    def consumer_left(self, topic: Topic, channel: Channel) -> None:
        """An ephemeral channel goes with its last consumer, an ephemeral topic with it."""
        if channel.ephemeral and not channel.consumers and not channel.closed:
            self.delete_channel(topic, channel.name)
            if topic.ephemeral and not topic.channels:
                self.delete_topic(topic.name)

    # -- publishing ----------------------------------------------------------

    def publish(
        self, name: str, bodies: Sequence[bytes], defer_ms: int = 0
    ) -> asyncio.Future[None] | None:
        """Append messages; None if durable already, else a future. Raises `PublishError`."""
        if self.primaries:
            raise PublishError("this node is the replica of a connected primary")
        try:
            topic = self.topic(name)
        except OSError as exc:
            raise PublishError(f"cannot create topic: {exc}") from exc
        size = sum(len(body) + _RECORD_OVERHEAD for body in bodies)
        if topic.ephemeral:
            held = topic.log.next_seq - topic.retention_floor()
            if held + len(bodies) > max(self.settings.mem_queue_size, 1):
                raise PublishError(f"ephemeral topic {name} full ({held} messages)")
        else:
            limit = self.settings.retention_bytes
            if limit and self.disk_bytes + size > limit:
                raise PublishError(
                    f"disk full: {self.disk_bytes} + {size} bytes > retention_bytes {limit}"
                )
        deliver_at = int(time.time() * 1000) + defer_ms if defer_ms > 0 else 0
        try:
            last, added = topic.append(bodies, deliver_at)
        except LogWriteError as exc:
            raise PublishError(f"write failed: {exc}") from exc
        if not topic.ephemeral:
            self.disk_bytes += added
        if topic.ephemeral or (self.committer.policy == "never" and self.replica is None):
            topic.commit(last + 1)
            return None
        if self.replica is not None:
            self.replica.appended(name)
        return asyncio.ensure_future(self._durable(topic, last))

    async def _durable(self, topic: Topic, last: int) -> None:
        try:
            try:
                await self.committer.commit(topic.log)
            except OSError as exc:
                raise PublishError(f"fsync failed: {exc}") from exc
            if self.replica is not None:
                await self.replica.wait(topic.name, last)
        finally:
            # Visible even when the publisher gets an error: the record is in the log,
            # so it is delivered (at least once) rather than left invisible.
            topic.commit(last + 1)

    def _dead_letter(self, channel: Channel, message: ChannelMessage) -> None:
        name = channel.topic.name + DEAD_LETTER_SUFFIX
        if not is_valid_name(name):
            log.warning("no dead-letter topic for %s: dropping message", channel.topic.name)
            channel.dead_lettered(message, ok=True)
            return

        async def move() -> None:
            ok = False
            try:
                pending = self.publish(name, [message.body])
                if pending is not None:
                    await pending
                ok = True
            except PublishError as exc:
                log.warning("dead-letter publish to %s failed: %s", name, exc)
            channel.dead_lettered(message, ok)

        self._spawn(move())

    # -- timers --------------------------------------------------------------

    def tick(self) -> None:
        for topic in list(self.topics.values()):
            for channel in list(topic.channels.values()):
                try:
                    channel.tick()
                except Exception:  # one channel's bug must not stop the others
                    log.exception("channel %s/%s tick failed", topic.name, channel.name)

    def checkpoint(self) -> None:
        """Snapshot every channel's progress (written in one worker thread, in order),
        then delete the log segments that no channel needs any more."""
        jobs: list[Callable[[], None]] = []
        for topic in list(self.topics.values()):
            for channel in list(topic.channels.values()):
                job = channel.checkpoint_job()
                if job is not None:
                    jobs.append(job)
            freed = topic.log.truncate_before(topic.retention_floor())
            if not topic.ephemeral:
                self.disk_bytes -= freed
        if jobs and self._loop is not None:
            self._loop.run_in_executor(self._writer, _write_checkpoints, jobs)

    def remove_data(self) -> None:
        """Delete the data path (tests)."""
        shutil.rmtree(self.settings.data_path, ignore_errors=True)
