"""LZW as Go's `compress/lzw` does it: LSB bit order, literal width 8.

memberlist compresses packets and push-pull streams with it by default, and
the standard library of Python has no LZW, so both directions live here.

Codes start 9 bits wide and grow to 12; 256 is *clear*, 257 is *end*. The
writer emits a clear code first, grows the width as soon as the next free
code reaches the next power of two, and when code 4095 would be assigned it
emits clear and starts over (the table is full). The reader follows the same
schedule one step behind. `compress` reproduces Go's output byte for byte.
"""

from __future__ import annotations

from tidings.protocol.memberlist.errors import DecodeError

CLEAR = 256
END = 257
MAX_CODE = 4095
MAX_WIDTH = 12

# Twice memberlist's push-pull limit (user state plus an equal node budget).
MAX_DECOMPRESSED = 2 * 20 * 1024 * 1024


def compress(data: bytes) -> bytes:
    """Compress like `lzw.NewWriter(w, lzw.LSB, 8)` followed by `Close()`."""
    out = bytearray()
    bits = 0
    nbits = 0
    width = 9
    hi = END
    overflow = 512

    def emit(code: int) -> None:
        nonlocal bits, nbits
        bits |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8

    if not data:
        emit(CLEAR)
        emit(END)
    else:
        table: dict[int, int] = {}
        emit(CLEAR)
        code = data[0]
        for literal in data[1:]:
            key = (code << 8) | literal
            found = table.get(key)
            if found is not None:
                code = found
                continue
            emit(code)
            code = literal
            hi += 1
            if hi == overflow:
                width += 1
                overflow <<= 1
            if hi == MAX_CODE:
                emit(CLEAR)
                width, hi, overflow = 9, END, 512
                table.clear()
                continue
            table[key] = hi
        emit(code)
        hi += 1
        if hi == overflow:
            width += 1
            overflow <<= 1
        if hi == MAX_CODE:
            emit(CLEAR)
            width = 9
        emit(END)
    if nbits > 0:
        out.append(bits & 0xFF)
    return bytes(out)


def decompress(data: bytes, limit: int = MAX_DECOMPRESSED) -> bytes:
    """Decompress Go LZW; a stream without its end code or over `limit` is refused."""
    out = bytearray()
    table: list[bytes] = [bytes((i,)) for i in range(256)] + [b""] * (MAX_CODE + 1 - 256)
    width = 9
    hi = END
    overflow = 512
    last = -1
    bits = 0
    nbits = 0
    pos = 0
    size = len(data)
    while True:
        while nbits < width:
            if pos >= size:
                raise DecodeError("lzw: stream ends without an end code")
            bits |= data[pos] << nbits
            pos += 1
            nbits += 8
        code = bits & ((1 << width) - 1)
        bits >>= width
        nbits -= width
        if code < CLEAR:
            entry = table[code]
        elif code == CLEAR:
            width, hi, overflow, last = 9, END, 512, -1
            continue
        elif code == END:
            return bytes(out)
        elif code < hi or (code == hi and last == -1 and table[code]):
            entry = table[code]
        elif code == hi and last != -1:
            previous = table[last]
            entry = previous + previous[:1]
        else:
            raise DecodeError("lzw: invalid code")
        if last != -1:
            table[hi] = table[last] + entry[:1]
        out += entry
        if len(out) > limit:
            raise DecodeError(f"lzw: decompressed data over {limit} bytes")
        last = code
        hi += 1
        if hi >= overflow:
            if width == MAX_WIDTH:
                last = -1
                hi -= 1
            else:
                width += 1
                overflow <<= 1
