"""Delta compression of publications (`delta: "fossil"`), computed once per channel.

A subscriber negotiates deltas in its subscribe request (`delta: "fossil"`)
in a namespace that allows them (`allowed_delta_types = ["fossil"]`) and
keeps a stream position (history with recovery or positioning). Afterwards,
a publication marked for deltas (the namespace's `delta_publish`, or the
API's `delta` flag) reaches it as `delta: true` with `data` a fossil delta
against the channel's previous publication, if it received that one and the
delta is smaller; otherwise in full (its first publication, the first after
a recovery, a publication not marked, or one that changed too much).

Everything here is per channel and per publication: a delta is encoded once
and the same bytes go to every delta subscriber whose position allows it.
JSON clients get `data` as a JSON string (the full payload's text, or the
delta's, which is text too: see `fossil`), as the SDKs expect it; Protobuf
clients get the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from tidings.errors import ReplyError
from tidings.protocol.centrifuge import fossil
from tidings.protocol.centrifuge.codes import ErrorCode
from tidings.protocol.centrifuge.messages import Publication, Push, Reply, SubscribeResult, raw

if TYPE_CHECKING:
    from tidings.channel_options import ChannelOptions
    from tidings.core.client import Client
    from tidings.core.node import Node
    from tidings.protocol.centrifuge.codec import Codec

FOSSIL = "fossil"


def check_type(requested: str) -> None:
    """Error 107 for a delta type that does not exist (checked before subscribing)."""
    if requested and requested != FOSSIL:
        raise ReplyError(ErrorCode.BAD_REQUEST, f"unknown delta type {requested!r}")


def negotiate(requested: str, options: ChannelOptions, result: SubscribeResult) -> bool:
    """Whether a subscriber asking for `requested` (checked) gets deltas."""
    # Deltas need a stream position: the subscriber must notice a missed publication.
    return requested == FOSSIL and FOSSIL in options.allowed_delta_types and bool(result.epoch)


def subscribed(node: Node, client: Client, name: str, result: SubscribeResult) -> None:
    """Turn deltas on for `client`'s new subscription to `name` (its result is `result`)."""
    sub = client.subscriptions.get(name)
    if sub is None:
        return
    sub.delta, sub.delta_seq = True, 0
    result.delta = True
    node.batches.delta_subscribed(name)
    if result.publications and not client.codec.binary:
        # Recovered publications are full ones: JSON subscribers read them as strings too.
        result.publications = [textual(pub) for pub in result.publications]


def as_text(data: bytes) -> bytes:
    """`data` (UTF-8) as the JSON string that JSON delta subscribers receive."""
    return msgspec.json.encode(data.decode("utf-8", "replace"))


def textual(pub: Publication) -> Publication:
    """`pub` with its data as a JSON string (a full publication for a JSON delta subscriber)."""
    return msgspec.structs.replace(pub, data=raw(as_text(bytes(pub.data))))


@dataclass(slots=True)
class ChannelBase:
    """The channel's publication that deltas of the next one are computed against."""

    seq: int
    data: bytes


class DeltaRun:
    """The deltas of one batch of a channel's publications, encoded at most once each.

    `base` is what the channel's delta subscribers may hold from earlier batches;
    publications are numbered on from it (`seq`).
    """

    __slots__ = (
        "_delta",
        "_full",
        "_joined",
        "_payloads",
        "_raw",
        "base",
        "eligible",
        "last_seq",
        "replies",
    )

    def __init__(
        self, replies: list[tuple[int, Reply]], eligible: list[bool], base: ChannelBase | None
    ) -> None:
        self.replies = replies
        self.eligible = eligible
        self.base = base
        first = base.seq if base is not None else 0
        self.last_seq = first + len(replies)
        self._full: dict[str, list[bytes]] = {}
        self._delta: dict[str, list[bytes | None]] = {}
        self._payloads: dict[tuple[str, bool], list[bytes]] = {}
        self._raw: dict[int, bytes | None] = {}
        self._joined: dict[tuple[str, bool], bytes] = {}

    def continues(self, seq: int) -> bool:
        """Whether a subscriber at `seq` holds the publication before this batch."""
        return self.base is not None and seq == self.base.seq and seq > 0

    def next_base(self) -> ChannelBase:
        _, reply = self.replies[-1]
        pub = reply.push.pub if reply.push is not None else None
        return ChannelBase(self.last_seq, bytes(pub.data) if pub is not None else b"")

    def payload(self, codec: Codec, continuing: bool) -> bytes:
        """The whole batch as one frame payload, shared by subscribers in the same position."""
        key = (codec.name, continuing)
        joined = self._joined.get(key)
        if joined is None:
            joined = self._joined[key] = codec.join(self.items(codec, continuing))
        return joined

    def items(self, codec: Codec, continuing: bool, skip: int = 0) -> list[bytes]:
        """Encoded publications from the `skip`-th on, for a subscriber that holds the
        publication before them (`continuing`) or not."""
        key = (codec.name, continuing)
        if not skip and key in self._payloads:
            return self._payloads[key]
        full = self._fulls(codec)
        out: list[bytes] = []
        for i in range(skip, len(self.replies)):
            delta = self._delta_at(codec, i) if (continuing or i > skip) else None
            out.append(delta if delta is not None else full[i])
        if not skip:
            self._payloads[key] = out
        return out

    def _fulls(self, codec: Codec) -> list[bytes]:
        items = self._full.get(codec.name)
        if items is None:
            items = []
            for _, reply in self.replies:
                push = reply.push
                full = reply
                if not codec.binary and push is not None and push.pub is not None:
                    full = Reply(push=Push(channel=push.channel, pub=textual(push.pub)))
                items.append(codec.encode(full))
            self._full[codec.name] = items
        return items

    def _delta_at(self, codec: Codec, i: int) -> bytes | None:
        """The i-th publication as a delta against the one before it, None when not worth it."""
        cached = self._delta.get(codec.name)
        if cached is None:
            cached = self._delta[codec.name] = [None] * len(self.replies)
        encoded = cached[i]
        if encoded is None:
            delta = self._raw_delta(i)
            if delta is None:
                return None
            if not codec.binary:
                try:
                    delta = msgspec.json.encode(delta.decode())
                except UnicodeDecodeError:  # data that is not UTF-8 text: sent whole
                    return None
            push = self.replies[i][1].push
            assert push is not None and push.pub is not None
            pub = msgspec.structs.replace(push.pub, data=raw(delta), delta=True)
            encoded = cached[i] = codec.encode(Reply(push=Push(channel=push.channel, pub=pub)))
        return encoded

    def _raw_delta(self, i: int) -> bytes | None:
        """The fossil delta of the i-th publication (computed once for every codec)."""
        if i in self._raw:
            return self._raw[i]
        delta = self._raw[i] = self._compute(i)
        return delta

    def _compute(self, i: int) -> bytes | None:
        if not self.eligible[i]:
            return None
        push = self.replies[i][1].push
        if push is None or push.pub is None:
            return None
        if i:
            before = self.replies[i - 1][1].push
            if before is None or before.pub is None:
                return None
            source = bytes(before.pub.data)
        elif self.base is not None:
            source = self.base.data
        else:
            return None
        target = bytes(push.pub.data)
        delta = fossil.encode(source, target)
        return delta if len(delta) < len(target) else None
