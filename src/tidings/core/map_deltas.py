"""Delta compression of map channels (`delta: "fossil"` on a map subscription), per key.

As in Centrifugo v6, a change of a map key goes to a delta subscriber as a
fossil delta against the key's previous value (not against the channel's
previous publication: changes of different keys interleave), when the
change is marked for deltas (the API's `delta` flag or the namespace's
`delta_publish`) and the delta is smaller. Otherwise it goes whole: a new
key, a removal (which ends the key's chain), a change that is not marked, or
one whose previous value this node does not know.

The previous values (`KeyedBases`) are kept by each node for the channels
with delta subscribers there: learnt from the state the first of them reads
(up to one page) and the values each new one is sent, then from what the
node delivers. They are trusted only while the offsets it delivers follow
each other: a gap or a repeat (a missed or reordered delivery, a cleared
map) forgets them all, so a delta is only ever computed against the value
every subscriber holds (a map subscriber holds every change after its
snapshot, in offset order). They are bounded per channel (keys and bytes,
least recently changed first out): a key not known goes whole. Centrifugo
instead reads the previous value from its map broker with each change and
ships it with the change. Each delta is computed once per publication and
encoded once per wire format for all subscribers.

JSON subscribers get values as JSON strings (full values and deltas), in
the subscribe reply's state and publications too, as the SDKs expect; the
publications of the live reply are per-key deltas among themselves (the
first of each key whole).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import msgspec

from tidings.core.deltas import textual
from tidings.protocol.centrifuge import fossil
from tidings.protocol.centrifuge.messages import Publication, Push, Reply, raw

if TYPE_CHECKING:
    from tidings.protocol.centrifuge.codec import Codec

#: Previous values kept per map channel with delta subscribers (see the docstring).
MAX_KEYS, MAX_BYTES = 4096, 4 * 1024 * 1024


class KeyedBases:
    """The latest value of each key of one map channel, as this node delivered them."""

    __slots__ = ("_values", "max_bytes", "max_keys", "offset", "size")

    def __init__(self, max_keys: int = MAX_KEYS, max_bytes: int = MAX_BYTES) -> None:
        self.max_keys, self.max_bytes = max_keys, max_bytes
        self._values: OrderedDict[str, bytes] = OrderedDict()
        #: Offset of the last change seen (0: none since the values were forgotten).
        self.offset = 0
        self.size = 0

    def __len__(self) -> int:
        return len(self._values)

    def learn(self, values: dict[str, bytes | None], offset: int) -> None:
        """Keys' `values` (None: removed) as of `offset`, read from the store by a new
        subscriber; taken only where they fit what was delivered here: when nothing
        was yet (then from `offset` on), or exactly up to `offset` (keys not known)."""
        if not offset:
            return
        if self.offset == 0 and not self._values:
            self.offset = offset
        elif self.offset != offset:
            return
        for key, data in values.items():
            if data is not None and key not in self._values:
                self._keep(key, data)

    def _keep(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        self._values[key] = data
        self.size += len(data)
        while len(self._values) > self.max_keys or self.size > self.max_bytes:
            _, evicted = self._values.popitem(last=False)
            self.size -= len(evicted)

    def advance(self, pub: Publication) -> bytes | None:
        """Take the change `pub` in; the key's value before it, None when not known."""
        continuous = self.offset > 0 and pub.offset == self.offset + 1
        if not continuous:
            self._values.clear()
            self.size = 0
        self.offset = pub.offset
        before = self._values.pop(pub.key, None)
        if before is not None:
            self.size -= len(before)
        if pub.removed:
            return None
        self._keep(pub.key, bytes(pub.data))
        return before


def _full(pub: Publication, binary: bool, live: bool = False) -> Publication:
    """`pub` whole, as a delta subscriber reads it (JSON: its data as a JSON string).

    Empty data (a removal's) stays out of a subscribe reply and is `""` in a
    live push, as from Centrifugo.
    """
    if binary or not (live or len(pub.data)):
        return pub
    return textual(pub)


def _as_delta(pub: Publication, delta: bytes, binary: bool) -> Publication | None:
    """`pub` carrying `delta` as its data; None when JSON cannot carry it (not UTF-8)."""
    if binary:
        return msgspec.structs.replace(pub, data=raw(delta), delta=True)
    try:
        text = msgspec.json.encode(delta.decode())
    except UnicodeDecodeError:
        return None
    return msgspec.structs.replace(pub, data=raw(text), delta=True)


def _smaller_delta(before: bytes, after: bytes) -> bytes | None:
    delta = fossil.encode(before, after)
    return delta if len(delta) < len(after) else None


def state_for_delta(entries: list[Publication], binary: bool) -> list[Publication]:
    """State entries (or stream pages) for a subscriber that negotiates deltas."""
    return entries if binary else [_full(pub, binary) for pub in entries]


def recovered_for_delta(pubs: list[Publication], binary: bool) -> list[Publication]:
    """The live reply's publications: per-key deltas among them, the first of a key whole."""
    previous: dict[str, bytes] = {}
    out: list[Publication] = []
    for pub in pubs:
        if pub.removed:
            previous.pop(pub.key, None)
            out.append(_full(pub, binary))
            continue
        data = bytes(pub.data)
        before = previous.get(pub.key)
        previous[pub.key] = data
        delta = _smaller_delta(before, data) if before is not None else None
        sent = _as_delta(pub, delta, binary) if delta is not None else None
        out.append(sent if sent is not None else _full(pub, binary))
    return out


class MapDeltaRun:
    """The changes of one batch of a map channel, for its delta subscribers.

    Each change's delta is computed once (on creation, advancing `bases`)
    and each is encoded once per codec.
    """

    __slots__ = ("_deltas", "_items", "_joined", "replies")

    def __init__(
        self, replies: list[tuple[int, Reply]], eligible: list[bool], bases: KeyedBases
    ) -> None:
        self.replies = replies
        self._deltas: list[bytes | None] = []
        for (_, reply), marked in zip(replies, eligible, strict=True):
            pub = reply.push.pub if reply.push is not None else None
            if pub is None:
                self._deltas.append(None)
                continue
            before = bases.advance(pub)
            if marked and before is not None:
                self._deltas.append(_smaller_delta(before, bytes(pub.data)))
            else:
                self._deltas.append(None)
        self._items: dict[str, list[bytes]] = {}
        self._joined: dict[str, bytes] = {}

    def items(self, codec: Codec) -> list[bytes]:
        """Every change of the batch encoded for `codec`'s delta subscribers."""
        items = self._items.get(codec.name)
        if items is None:
            items = self._items[codec.name] = [
                self._encode(codec, reply, delta)
                for (_, reply), delta in zip(self.replies, self._deltas, strict=True)
            ]
        return items

    def payload(self, codec: Codec) -> bytes:
        """The whole batch as one frame payload for `codec`."""
        joined = self._joined.get(codec.name)
        if joined is None:
            joined = self._joined[codec.name] = codec.join(self.items(codec))
        return joined

    @staticmethod
    def _encode(codec: Codec, reply: Reply, delta: bytes | None) -> bytes:
        push = reply.push
        if push is None or push.pub is None:
            return codec.encode(reply)
        pub = _as_delta(push.pub, delta, codec.binary) if delta is not None else None
        if pub is None:
            pub = _full(push.pub, codec.binary, live=True)
        return codec.encode(Reply(push=Push(channel=push.channel, pub=pub)))
