"""Publications of one event-loop turn, grouped by channel, fanned out at its end.

When a channel gets several publications in one turn, every subscriber gets
them as one pre-joined payload: N subscribers cost N enqueues per turn, not
N per publication. Each publication is encoded once per wire format, and
each joined payload is built once per format and shared by all subscribers.

A client that subscribed with recovery during the turn already received the
publications up to its recovered offset; for it alone the payload is rebuilt
without those, so recovery never duplicates what the batch delivers.

In a channel with delta subscribers (see `deltas`; map channels: see
`map_deltas`), each publication's delta is also computed once per batch, and
those subscribers share its encodings.

A subscriber with a tags filter gets the publications its filter matches,
joined for it alone from the shared encodings; channels without filtered
subscribers never evaluate a filter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tidings.core.deltas import ChannelBase, DeltaRun
from tidings.core.map_deltas import KeyedBases, MapDeltaRun
from tidings.protocol.centrifuge.messages import Publication, Push, Reply

if TYPE_CHECKING:
    from tidings.core.client import Client, Subscription
    from tidings.core.hub import Hub
    from tidings.protocol.centrifuge.codec import Codec
    from tidings.protocol.centrifuge.tags_filter import Matcher


class _Batch:
    __slots__ = ("eligible", "encoded", "fresh", "replies")

    def __init__(self) -> None:
        self.replies: list[tuple[int, Reply]] = []
        # per publication: may it go as a delta (delta_publish or the API's flag)
        self.eligible: list[bool] = []
        # codec name -> encoded publications, in order
        self.encoded: dict[str, list[bytes]] = {}
        # clients that subscribed to the channel after this batch began
        self.fresh: set[Client] = set()

    def encoded_for(self, codec: Codec) -> list[bytes]:
        items = self.encoded.get(codec.name)
        if items is None:
            items = self.encoded[codec.name] = [codec.encode(r) for _, r in self.replies]
        return items


class PublicationBatches:
    def __init__(self, hub: Hub, json_codec: Codec) -> None:
        self._hub = hub
        self.json_codec = json_codec
        self._batches: dict[str, _Batch] = {}
        #: Channels with delta subscribers, and what their deltas start from.
        self._bases: dict[str, ChannelBase | None] = {}
        #: Channels with tags-filtered subscribers: client -> its filter.
        self._filters: dict[str, dict[Client, Matcher]] = {}
        #: Map channels with delta subscribers, and the key values their deltas start from.
        self._keyed: dict[str, KeyedBases] = {}
        #: Bytes written straight to clients (queued ones are counted when flushed).
        self.bytes_out = 0

    def __bool__(self) -> bool:
        return bool(self._batches)

    def add(self, name: str, pub: Publication, delta: bool = False) -> bool:
        """Queue `pub` for the channel's subscribers; False when it has none here.

        With `delta`, subscribers that negotiated deltas may get it as one.
        """
        if not self._hub.num_subscribers(name):
            return False
        batch = self._batches.get(name)
        if batch is None:
            batch = self._batches[name] = _Batch()
        reply = Reply(push=Push(channel=name, pub=pub))
        batch.replies.append((pub.offset, reply))
        batch.eligible.append(delta)
        batch.encoded.setdefault(self.json_codec.name, []).append(self.json_codec.encode(reply))
        return True

    def subscribed(self, name: str, client: Client) -> None:
        """`client` just joined `name`: it may already hold some of this turn's batch."""
        batch = self._batches.get(name)
        if batch is not None:
            batch.fresh.add(client)

    def delta_subscribed(self, name: str) -> None:
        """A subscriber of `name` negotiated deltas (its first publication goes in full)."""
        self._bases.setdefault(name, None)

    def filter_added(self, name: str, client: Client, matcher: Matcher) -> None:
        """`client` subscribed to `name` with a tags filter."""
        self._filters.setdefault(name, {})[client] = matcher

    def filter_removed(self, name: str, client: Client) -> None:
        """`client`, subscribed with a tags filter, left `name`."""
        filters = self._filters.get(name)
        if filters is not None:
            filters.pop(client, None)
            if not filters:
                del self._filters[name]

    def knows_map(self, name: str) -> bool:
        """Whether the node keeps values of map channel `name` for delta subscribers."""
        return name in self._keyed

    def map_delta_subscribed(self, name: str, values: dict[str, bytes | None], offset: int) -> None:
        """A subscriber of map channel `name` negotiated deltas (per key, see `map_deltas`);
        it holds `values` (None: removed) as of `offset`."""
        bases = self._keyed.get(name)
        if bases is None:
            bases = self._keyed[name] = KeyedBases()
        bases.learn(values, offset)

    def forget(self, name: str) -> None:
        """The last subscriber of `name` left: drop what its deltas started from."""
        self._bases.pop(name, None)
        self._keyed.pop(name, None)

    def flush(self) -> None:
        """Hand every queued batch to the channel's current subscribers."""
        batches, self._batches = self._batches, {}
        json_codec = self.json_codec
        for name, batch in batches.items():
            json_payload = json_codec.join(batch.encoded[json_codec.name])
            shared: dict[str, bytes] = {}
            fresh = batch.fresh
            run: DeltaRun | None = None
            if name in self._bases:
                run = DeltaRun(batch.replies, batch.eligible, self._bases[name])
            keyed = self._keyed.get(name)
            map_run = None if keyed is None else MapDeltaRun(batch.replies, batch.eligible, keyed)
            delta_subscribers = 0
            json_written = other_bytes = 0
            filters = self._filters.get(name)
            for client in list(self._hub.subscribers(name)):
                # One client whose write (or encoding) raises is dropped; the others
                # of the channel, and the other channels, still get theirs.
                try:
                    codec = client.codec
                    if filters is not None and (matcher := filters.get(client)) is not None:
                        other_bytes += _deliver_filtered(batch, client, name, matcher)
                        continue
                    if run is not None or map_run is not None:
                        sub = client.subscriptions.get(name)
                        if sub is not None and sub.delta:
                            delta_subscribers += 1
                            if map_run is not None:
                                other_bytes += _deliver_map_deltas(map_run, batch, client, sub)
                            elif run is not None:
                                other_bytes += _deliver_deltas(run, batch, client, sub)
                            continue
                    if fresh and client in fresh:
                        sub = client.subscriptions.get(name)
                        rest = _after(batch, codec, sub.floor if sub is not None else 0)
                        if rest:
                            client.enqueue(rest)
                    elif codec is json_codec:
                        if client.write_now(json_payload):
                            json_written += 1
                    else:
                        payload = shared.get(codec.name)
                        if payload is None:
                            payload = shared[codec.name] = codec.join(batch.encoded_for(codec))
                        if client.write_now(payload):
                            other_bytes += len(payload)
                except Exception as exc:
                    client.fail(f"delivery of {name!r} failed: {exc!r}")
            self.bytes_out += json_written * len(json_payload) + other_bytes
            self._keep_bases(name, run, map_run, delta_subscribers)

    def _keep_bases(
        self, name: str, run: DeltaRun | None, map_run: MapDeltaRun | None, subscribers: int
    ) -> None:
        """After a batch: what the next deltas of `name` start from, if anyone wants them."""
        if map_run is not None and not subscribers:
            del self._keyed[name]
        if run is not None:
            if subscribers:
                self._bases[name] = run.next_base()
            else:
                del self._bases[name]


def _deliver_deltas(run: DeltaRun, batch: _Batch, client: Client, sub: Subscription) -> int:
    """Queue or write the batch for a delta subscriber; the bytes written now, if any."""
    written = 0
    if batch.fresh and client in batch.fresh:
        skip = sum(1 for offset, _ in batch.replies if offset <= sub.floor)
        items = run.items(client.codec, False, skip) if skip < len(batch.replies) else []
        if items:
            client.enqueue(client.codec.join(items))
    else:
        payload = run.payload(client.codec, run.continues(sub.delta_seq))
        if client.write_now(payload):
            written = len(payload)
    sub.delta_seq = run.last_seq
    return written


def _deliver_filtered(batch: _Batch, client: Client, name: str, matcher: Matcher) -> int:
    """Queue or write what `matcher` lets through; the bytes written now, if any."""
    floor, fresh = 0, bool(batch.fresh) and client in batch.fresh
    if fresh:
        sub = client.subscriptions.get(name)
        floor = sub.floor if sub is not None else 0
    items = batch.encoded_for(client.codec)
    kept = [
        data
        for (offset, reply), data in zip(batch.replies, items, strict=True)
        if offset > floor and reply.push is not None and matcher(_tags(reply.push.pub))
    ]
    if not kept:
        return 0
    payload = client.codec.join(kept)
    if fresh:
        client.enqueue(payload)
        return 0
    return len(payload) if client.write_now(payload) else 0


def _tags(pub: Publication | None) -> dict[str, str] | None:
    return pub.tags if pub is not None else None


def _deliver_map_deltas(run: MapDeltaRun, batch: _Batch, client: Client, sub: Subscription) -> int:
    """Queue or write a map batch for a delta subscriber; the bytes written now, if any."""
    if batch.fresh and client in batch.fresh:
        # Its reply already held the changes up to its floor (and the values they set).
        items = run.items(client.codec)
        replies = batch.replies
        kept = [d for (offset, _), d in zip(replies, items, strict=True) if offset > sub.floor]
        if kept:
            client.enqueue(client.codec.join(kept))
        return 0
    payload = run.payload(client.codec)
    return len(payload) if client.write_now(payload) else 0


def _after(batch: _Batch, codec: Codec, floor: int) -> bytes:
    items = batch.encoded_for(codec)
    kept = [data for (offset, _), data in zip(batch.replies, items, strict=True) if offset > floor]
    return codec.join(kept) if kept else b""


class EncodedOnce:
    """One reply, encoded at most once per codec however many clients receive it."""

    __slots__ = ("_by_codec", "reply")

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self._by_codec: dict[str, bytes] = {}

    def get(self, codec: Codec) -> bytes:
        data = self._by_codec.get(codec.name)
        if data is None:
            data = self._by_codec[codec.name] = codec.encode(self.reply)
        return data
