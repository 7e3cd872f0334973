"""Fossil deltas: the `delta: "fossil"` compression of publication data (sans-I/O).

A delta turns the previous payload of a channel (the source) into the next
one (the target). Its format, as the SDKs apply it:

- the target's length, then a newline;
- commands, in order: `N@O,` copies N bytes of the source from offset O;
  `N:` followed by N bytes inserts those bytes;
- `C;` ends the delta: C is the checksum of the target (below).

Integers are written in base 64, most significant digit first, with the
digits of `DIGITS`. The checksum is the sum, modulo 2**32, of the target
read as big-endian 32-bit words (the last one padded with zero bytes).

`encode` finds copies by indexing the source in blocks of `BLOCK` bytes and
looking each window of the target up in that index; a match is then grown
in both directions. Literal runs never split a UTF-8 character, so the delta
of two UTF-8 texts is itself UTF-8 text (JSON clients receive deltas as JSON
strings). The result is a valid delta, not necessarily the one the original
C implementation would produce: any applier reconstructs the same target.
"""

from __future__ import annotations

import sys
from array import array

DIGITS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
_VALUES = {c: i for i, c in enumerate(DIGITS)}
#: Bytes of source per indexed block, and shortest copy worth a command.
BLOCK = 16
#: Bytes compared at once while growing a match, from the most.
_STRIDES = (256, 64, 16, 4, 1)


class DeltaError(ValueError):
    """A delta that does not apply to the source it is given."""


def _digits(n: int) -> bytes:
    if n == 0:
        return b"0"
    out = bytearray()
    while n:
        out.append(DIGITS[n & 63])
        n >>= 6
    out.reverse()
    return bytes(out)


#: Every integer below 4096 (two digits), written once.
_SMALL = tuple(_digits(n) for n in range(4096))


def _int(n: int) -> bytes:
    return _SMALL[n] if n < 4096 else _digits(n)


def checksum(data: bytes) -> int:
    """The delta format's 32-bit checksum of `data`."""
    padded = data + b"\0" * (-len(data) % 4)
    words = array("I", padded)
    if words.itemsize != 4:  # pragma: no cover - "I" is 4 bytes on every supported platform
        words = array("L", padded)
    if sys.byteorder == "little":
        words.byteswap()
    return sum(words) & 0xFFFFFFFF


def _is_continuation(byte: int) -> bool:
    return 0x80 <= byte < 0xC0


def _common_forward(a: bytes, i: int, b: bytes, j: int) -> int:
    """How many bytes `a[i:]` and `b[j:]` have in common at their start."""
    limit = min(len(a) - i, len(b) - j)
    n = 0
    for stride in _STRIDES:  # long runs compared a slice at a time, then narrowed down
        while n + stride <= limit and a[i + n : i + n + stride] == b[j + n : j + n + stride]:
            n += stride
    return n


def encode(source: bytes, target: bytes) -> bytes:
    """The delta that turns `source` into `target`."""
    out = bytearray(_int(len(target)) + b"\n")
    index: dict[bytes, int] = {}
    if len(source) >= BLOCK:
        for offset in range(0, len(source) - BLOCK + 1, BLOCK):
            index.setdefault(source[offset : offset + BLOCK], offset)
    pending = 0  # start of the literal run not yet written
    i = 0
    end = len(target) - BLOCK
    while i <= end and index:
        found = index.get(target[i : i + BLOCK])
        if found is None:
            i += 1
            continue
        s, t = found, i
        while s > 0 and t > pending and source[s - 1] == target[t - 1]:
            s, t = s - 1, t - 1
        grown = _common_forward(source, found + BLOCK, target, i + BLOCK)
        stop = i + BLOCK + grown
        # Copies start and end on character boundaries: the literals between stay UTF-8.
        while t < stop and _is_continuation(target[t]):
            s, t = s + 1, t + 1
        while stop > t and stop < len(target) and _is_continuation(target[stop]):
            stop -= 1
        length = stop - t
        if length < BLOCK:
            i += 1
            continue
        if t > pending:
            out += _int(t - pending) + b":" + target[pending:t]
        out += _int(length) + b"@" + _int(s) + b","
        pending = i = stop
    if pending < len(target):
        out += _int(len(target) - pending) + b":" + target[pending:]
    out += _int(checksum(target)) + b";"
    return bytes(out)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def number(self) -> int:
        value, start = 0, self.pos
        while self.pos < len(self.data) and (digit := _VALUES.get(self.data[self.pos])) is not None:
            value = (value << 6) | digit
            self.pos += 1
        if self.pos == start:
            raise DeltaError("integer expected")
        return value

    def char(self) -> int:
        if self.pos >= len(self.data):
            raise DeltaError("unterminated delta")
        self.pos += 1
        return self.data[self.pos - 1]


def apply(source: bytes, delta: bytes) -> bytes:
    """The target that `delta` makes of `source`; raises `DeltaError` if it does not apply."""
    reader = _Reader(delta)
    size = reader.number()
    if reader.char() != ord("\n"):
        raise DeltaError("size not terminated by a newline")
    out = bytearray()
    while True:
        count = reader.number()
        op = reader.char()
        if op == ord("@"):
            offset = reader.number()
            if reader.char() != ord(","):
                raise DeltaError("copy not terminated by ','")
            if offset + count > len(source):
                raise DeltaError("copy beyond the source")
            out += source[offset : offset + count]
        elif op == ord(":"):
            if reader.pos + count > len(delta):
                raise DeltaError("insert beyond the delta")
            out += delta[reader.pos : reader.pos + count]
            reader.pos += count
        elif op == ord(";"):
            if len(out) != size:
                raise DeltaError("size does not match")
            if count != checksum(bytes(out)):
                raise DeltaError("bad checksum")
            return bytes(out)
        else:
            raise DeltaError("unknown delta operator")
        if len(out) > size:
            raise DeltaError("output larger than announced")
