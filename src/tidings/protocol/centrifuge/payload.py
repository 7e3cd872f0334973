"""JSON payloads (`data`, `info`) checked once where they enter, and kept compact.

A payload is relayed as raw bytes into every subscriber's frames. The JSON
encoding and the unidirectional streams (uni_websocket, SSE) put one message
per line, so a payload must never contain a raw line break: JSON allows them
as whitespace, and a pretty-printed payload would split a push in two or,
worse, let a publisher forge a whole line (a push for another channel).
Standards-following clients also fail a connection whose text frame is not
UTF-8, and recursive JSON decoders (the SDKs', and ours) have a depth limit.

`compact_json` therefore accepts a payload only if it is one JSON value in
valid UTF-8, nested at most `MAX_DEPTH` deep, and returns it without any
insignificant whitespace. It runs once per publication, where the payload
enters (client command, server API, token claim); everything downstream
relays the compact bytes as they are.
"""

from __future__ import annotations

import operator
from itertools import accumulate, count

import msgspec

#: Deepest nesting of arrays and objects a payload may have. JSON decoders that
#: recurse (Python's `json`, msgspec) fail near 1,000 levels; nothing real needs
#: more than a few dozen.
MAX_DEPTH = 128

# Brackets and quotes are all the depth check needs to see; every opening
# bracket becomes 2 and every closing one 0, so a running sum minus the count
# of brackets so far is the nesting level.
_LEVELS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_NOISE = bytes(b for b in range(256) if b not in b'[]{}"')
#: Innermost pairs removed by cheap passes before the exact count (shallow payloads end here).
_PASSES = 8


class InvalidPayload(ValueError):
    """A payload that cannot be relayed; the message says why (error 107)."""


def compact_json(data: bytes | bytearray | memoryview, max_depth: int = MAX_DEPTH) -> bytes:
    """`data` as compact JSON; raises `InvalidPayload` naming what is wrong.

    Checks, in order: valid UTF-8 (also inside strings, which msgspec skips
    when it only validates), one well-formed JSON value (lone UTF-16
    surrogate escapes are refused too), and nesting at most `max_depth`.
    """
    view = bytes(data)
    if not view.isascii():
        try:
            view.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPayload(f"not valid UTF-8 at byte {exc.start}") from None
    try:
        compact = msgspec.json.format(view, indent=-1)
    except msgspec.DecodeError as exc:
        raise InvalidPayload(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidPayload(f"nested deeper than {max_depth} levels") from None
    # At most as deep as it has brackets: the exact check is rarely needed.
    if compact.count(b"[") + compact.count(b"{") > max_depth and _deeper(compact, max_depth):
        raise InvalidPayload(f"nested deeper than {max_depth} levels")
    return compact


def _deeper(compact: bytes, max_depth: int) -> bool:
    """Whether the arrays and objects of well-formed `compact` JSON nest beyond `max_depth`.

    C-speed steps, no Python loop per byte: escapes are cut out (so quotes
    delimit strings exactly), then strings and everything but brackets. Each
    pass of `replace` removes the innermost pairs, which lowers the depth by
    exactly one; what is left after a few passes is measured with a running sum.
    """
    unescaped = compact
    if b"\\" in compact:
        unescaped = compact.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Two quotes side by side have no bracket between them: dropping them removes an
    # empty string or merges two strings into one, so most strings go in one C pass.
    brackets = unescaped.translate(_LEVELS, _NOISE).replace(b'""', b"")
    if b'"' in brackets:  # strings with brackets in them: outside are the even pieces
        brackets = b"".join(brackets.split(b'"')[::2])
    passes = 0
    while brackets and passes < _PASSES:
        brackets = brackets.replace(b"\x02\x00", b"")
        passes += 1
    left = max(map(operator.sub, accumulate(brackets), count(1))) if brackets else 0
    return passes + left > max_depth
