"""msgpack exactly as memberlist's Go codec writes it, and a bounded reader.

memberlist encodes its structs with hashicorp/go-msgpack (`MsgpackHandle{}`):
a map keyed by the Go field names *sorted by name* (go-msgpack v2 writes
struct fields in sorted order, not declaration order), strings and byte
slices as old-style *raw* strings (no str8, no bin), unsigned fields in the
smallest unsigned form, and signed `int` fields above 127 as int16/int32/int64
(never uint8). A nil slice is written as nil. Reproducing those choices is
what makes our frames byte-identical to a Go peer's.

Reading goes through the `msgpack` package with `raw=True` and hard limits, and
every failure becomes a `DecodeError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from enum import Enum
from typing import Any

import msgpack

from tidings.protocol.memberlist.errors import DecodeError, Incomplete


class Kind(Enum):
    """How a Go field is written: the Go type decides the msgpack form."""

    UINT = "uint"  # uint8/16/32/64 and named unsigned types
    INT = "int"  # Go `int` (push-pull counts, node state)
    STR = "str"  # Go string
    BYTES = "bytes"  # []byte; empty is written as nil
    BOOL = "bool"


FieldSpec = tuple[str, Kind, bool]  # (Go field name, kind, omitempty)

# Bounds for anything we read: a packet is at most 64 KiB, a push-pull frame at
# most 20 MiB of state (memberlist's own limit). No container may claim more.
MAX_STR = 20 * 1024 * 1024
MAX_CONTAINER = 1024 * 1024


def pack_uint(out: bytearray, value: int) -> None:
    if value < 0:
        raise ValueError("negative value for an unsigned field")
    if value <= 0x7F:
        out.append(value)
    elif value <= 0xFF:
        out += b"\xcc" + struct.pack(">B", value)
    elif value <= 0xFFFF:
        out += b"\xcd" + struct.pack(">H", value)
    elif value <= 0xFFFFFFFF:
        out += b"\xce" + struct.pack(">I", value)
    else:
        out += b"\xcf" + struct.pack(">Q", value)


def pack_int(out: bytearray, value: int) -> None:
    if 0 <= value <= 0x7F or -32 <= value < 0:
        out += struct.pack(">b", value) if value < 0 else bytes((value,))
    elif -0x80 <= value <= 0x7F:
        out += b"\xd0" + struct.pack(">b", value)
    elif -0x8000 <= value <= 0x7FFF:
        out += b"\xd1" + struct.pack(">h", value)
    elif -0x80000000 <= value <= 0x7FFFFFFF:
        out += b"\xd2" + struct.pack(">i", value)
    else:
        out += b"\xd3" + struct.pack(">q", value)


def pack_raw(out: bytearray, value: bytes) -> None:
    size = len(value)
    if size <= 31:
        out.append(0xA0 | size)
    elif size <= 0xFFFF:
        out += b"\xda" + struct.pack(">H", size)
    else:
        out += b"\xdb" + struct.pack(">I", size)
    out += value


def pack_map_header(out: bytearray, size: int) -> None:
    if size <= 15:
        out.append(0x80 | size)
    elif size <= 0xFFFF:
        out += b"\xde" + struct.pack(">H", size)
    else:
        out += b"\xdf" + struct.pack(">I", size)


def _is_empty(kind: Kind, value: Any) -> bool:
    return not value


def pack_struct(out: bytearray, fields: Iterable[tuple[FieldSpec, Any]]) -> None:
    """Append a Go struct as a msgpack map (fields sorted by name, omitempty honoured)."""
    present = sorted(
        ((spec, value) for spec, value in fields if not (spec[2] and _is_empty(spec[1], value))),
        key=lambda item: item[0][0],
    )
    pack_map_header(out, len(present))
    for (name, kind, _), value in present:
        pack_raw(out, name.encode())
        if kind is Kind.UINT:
            pack_uint(out, value)
        elif kind is Kind.INT:
            pack_int(out, value)
        elif kind is Kind.STR:
            pack_raw(out, value.encode("utf-8", "surrogateescape"))
        elif kind is Kind.BYTES:
            if value:
                pack_raw(out, bytes(value))
            else:
                out.append(0xC0)
        else:
            out.append(0xC3 if value else 0xC2)


def _unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(
        raw=True,
        strict_map_key=False,
        use_list=True,
        max_buffer_size=2**31 - 1,
        max_str_len=MAX_STR,
        max_bin_len=MAX_STR,
        max_array_len=MAX_CONTAINER,
        max_map_len=MAX_CONTAINER,
        max_ext_len=MAX_STR,
    )


def unpack_one(buf: bytes, offset: int = 0, *, complete: bool = True) -> tuple[Any, int]:
    """Read one msgpack value at `offset`; return it and the offset after it.

    Trailing bytes are left alone (Go's decoder reads one value and stops). If the
    value is cut short: `DecodeError` when `complete` (a packet), `Incomplete`
    otherwise (a stream that may still grow).
    """
    unpacker = _unpacker()
    unpacker.feed(memoryview(buf)[offset:])
    try:
        value = unpacker.unpack()
    except msgpack.OutOfData:
        if complete:
            raise DecodeError("truncated msgpack value") from None
        raise Incomplete("msgpack value needs more bytes") from None
    except Exception as exc:  # the msgpack package raises a zoo of types
        raise DecodeError(f"invalid msgpack: {exc.__class__.__name__}") from None
    return value, offset + unpacker.tell()


def _as_text(value: Any, field: str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    raise DecodeError(f"field {field} is not a string")


def _as_bytes(value: Any, field: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, list) and all(isinstance(x, int) and 0 <= x <= 255 for x in value):
        return bytes(value)
    raise DecodeError(f"field {field} is not a byte string")


def _as_int(value: Any, field: str, low: int, high: int) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"field {field} is not an integer")
    if not low <= value <= high:
        raise DecodeError(f"field {field} out of range: {value}")
    return value


UINT_RANGES = {8: 0xFF, 16: 0xFFFF, 32: 0xFFFFFFFF, 64: 2**64 - 1}


def struct_fields(value: Any, what: str) -> dict[str, Any]:
    """The map of a Go struct keyed by field name (unknown keys kept, ignored later)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(f"{what} is not a map")
    fields: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(key, bytes):
            fields[key.decode("latin-1")] = item
        elif isinstance(key, str):
            fields[key] = item
    return fields


def get_text(fields: dict[str, Any], name: str) -> str:
    return _as_text(fields.get(name), name)


def get_bytes(fields: dict[str, Any], name: str) -> bytes:
    return _as_bytes(fields.get(name), name)


def get_uint(fields: dict[str, Any], name: str, bits: int) -> int:
    return _as_int(fields.get(name), name, 0, UINT_RANGES[bits])


def get_int(fields: dict[str, Any], name: str) -> int:
    return _as_int(fields.get(name), name, -(2**63), 2**63 - 1)


def get_bool(fields: dict[str, Any], name: str) -> bool:
    value = fields.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise DecodeError(f"field {name} is not a boolean")
    return value
