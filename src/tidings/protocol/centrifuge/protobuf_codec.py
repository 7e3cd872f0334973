"""The Protobuf encoding of Centrifuge v2: uvarint-length-prefixed messages in binary frames.

A small protobuf wire-format codec of our own, driven by the field table of
`protobuf_schema`: one generic encoder and one generic decoder walk each
Struct's fields, so the messages stay the same Structs the JSON codec uses.
`bytes` fields (`data`, `info`, `conn_info`, `chan_info`) are `msgspec.Raw`
holding the payload bytes as they are, so a payload is copied, never
re-encoded.

Decoding follows protobuf's rules for what is lenient (unknown fields are
skipped, a missing field is its default, a field sent twice keeps its last
value - protobuf would merge two copies of an embedded message, which no SDK
sends - and varints are truncated to the declared width) and rejects
everything that cannot be parsed with `MalformedFrame`: truncated varints,
lengths beyond the buffer, wire types other than the field declares,
invalid UTF-8 in strings, field number 0 and groups.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import compress
from operator import itemgetter
from typing import Any

from msgspec import Struct
from msgspec.structs import astuple

from tidings.protocol.centrifuge import protobuf_schema as schema
from tidings.protocol.centrifuge.codec import MalformedFrame
from tidings.protocol.centrifuge.messages import Command, Reply, raw

# Wire types.
VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5

_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1

# Operations of a compiled field (small ints: compared in the hot loop).
_OP_VARINT, _OP_STRING, _OP_BYTES, _OP_MESSAGE, _OP_REPEATED, _OP_MAP = range(6)
# How a decoded varint becomes the attribute value.
_SCALAR_FIX: dict[str, Callable[[int], int | bool]] = {
    schema.UINT32: lambda v: v & _MASK32,
    schema.UINT64: lambda v: v,
    schema.INT32: lambda v: (v & _MASK32) - ((v & 0x80000000) << 1),
    schema.INT64: lambda v: v - ((v & (1 << 63)) << 1),
    schema.BOOL: bool,
}

_SMALL = tuple(bytes((n,)) for n in range(0x80))


def uvarint(n: int) -> bytes:
    """`n` (0 <= n < 2**64) as a protobuf varint."""
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_uvarint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """The varint at `buf[pos:end]` and the position after it; raises `MalformedFrame`."""
    if pos >= end:
        raise MalformedFrame("truncated varint")
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    result = byte & 0x7F
    shift = 7
    pos += 1
    while True:
        if pos >= end:
            raise MalformedFrame("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _MASK64, pos
        shift += 7
        if shift >= 70:
            raise MalformedFrame("varint longer than 10 bytes")


# --- compiled schema -------------------------------------------------------------


class _Plan:
    """One Struct type's fields, compiled for the encoder and the decoder."""

    __slots__ = ("by_number", "cls", "fields", "order", "positions")

    def __init__(self, cls: type[Struct]) -> None:
        self.cls = cls
        #: (tag bytes, op, sub) in field-number order, for encoding.
        self.fields: tuple[tuple[bytes, int, Any], ...] = ()
        #: The `astuple` values in the order of `fields`; None when already so.
        self.order: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
        #: range(len(fields)), to pick the indexes of the set fields in C.
        self.positions = range(0)
        #: field number -> (attribute, wire type, op, sub), for decoding.
        self.by_number: dict[int, tuple[str, int, int, Any]] = {}


def _compile(table: dict[type[Struct], dict[str, tuple[int, schema.Kind]]]) -> dict[type, _Plan]:
    plans = {cls: _Plan(cls) for cls in table}

    def message(kind: type[Struct]) -> _Plan:
        if kind not in plans:
            raise TypeError(f"{kind.__name__} is used in the schema but has no entry")
        return plans[kind]

    for cls, fields in table.items():
        plan = plans[cls]
        compiled, indexes = [], []
        positions = {name: index for index, name in enumerate(cls.__struct_fields__)}
        for attr, (number, kind) in sorted(fields.items(), key=lambda f: f[1][0]):
            sub: Any = None
            if isinstance(kind, schema.Repeated):
                # sub None: `repeated string`.
                item = kind.item
                op, sub = _OP_REPEATED, (None if isinstance(item, str) else message(item))
            elif isinstance(kind, schema.MapOf):
                value = kind.value
                op, sub = _OP_MAP, (value if isinstance(value, str) else message(value))
            elif isinstance(kind, type):
                op, sub = _OP_MESSAGE, message(kind)
            elif kind == schema.STRING:
                op = _OP_STRING
            elif kind == schema.BYTES:
                op = _OP_BYTES
            else:
                op, sub = _OP_VARINT, _SCALAR_FIX[kind]
            wire = VARINT if op == _OP_VARINT else LEN
            compiled.append((uvarint(number << 3 | wire), op, sub))
            indexes.append(positions[attr])
            plan.by_number[number] = (attr, wire, op, sub)
        plan.fields = tuple(compiled)
        plan.positions = range(len(compiled))
        if indexes != list(range(len(cls.__struct_fields__))):
            plan.order = _reorder(indexes)
    return plans


def _reorder(indexes: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    if len(indexes) == 1:
        (only,) = indexes
        return lambda values: (values[only],)
    return itemgetter(*indexes) if indexes else lambda values: ()


_PLANS = _compile(schema.SCHEMA)
_COMMAND = _PLANS[Command]
_REPLY = _PLANS[Reply]
_MAP_KEY = uvarint(1 << 3 | LEN)
_MAP_VALUE = uvarint(2 << 3 | LEN)


# --- encoding --------------------------------------------------------------------


def _encode_fields(obj: Any, plan: _Plan, out: list[Any]) -> int:
    """Append the encoding of `obj`'s non-default fields to `out`; returns its length.

    Parts are collected, not concatenated, so a payload is copied once, into
    the final frame, however deeply it is nested.
    """
    size = 0
    values = astuple(obj)
    if plan.order is not None:
        values = plan.order(values)
    fields = plan.fields
    # Only the set fields: proto3 leaves defaults out, and None is an absent
    # message. Selecting them in C matters: most fields of a Reply are None.
    for index in compress(plan.positions, values):
        value = values[index]
        tag, op, sub = fields[index]
        if op == _OP_VARINT:
            encoded = uvarint(value & _MASK64 if value < 0 else value)
            out.append(tag)
            out.append(encoded)
            size += len(tag) + len(encoded)
        elif op <= _OP_BYTES:  # a string or bytes
            data = value.encode() if op == _OP_STRING else value
            length = uvarint(len(data))
            out.append(tag)
            out.append(length)
            out.append(data)
            size += len(tag) + len(length) + len(data)
        elif op == _OP_MESSAGE:
            size += _encode_message(value, tag, sub, out)
        elif op == _OP_REPEATED and sub is None:
            for item in value:
                data = item.encode()
                length = uvarint(len(data))
                out += (tag, length, data)
                size += len(tag) + len(length) + len(data)
        elif op == _OP_REPEATED:
            for item in value:
                size += _encode_message(item, tag, sub, out)
        else:
            for key, item in value.items():
                size += _encode_map_entry(key, item, tag, sub, out)
    return size


def _encode_message(obj: Any, tag: bytes, plan: _Plan, out: list[Any]) -> int:
    out.append(tag)
    at = len(out)
    out.append(b"")  # the length, known once the fields are written
    size = _encode_fields(obj, plan, out)
    out[at] = length = uvarint(size)
    return len(tag) + len(length) + size


def _encode_map_entry(key: str, value: Any, tag: bytes, sub: Any, out: list[Any]) -> int:
    # A map entry is a message {key = 1; value = 2}. Like the reference
    # implementations, both fields are written even when empty.
    out.append(tag)
    at = len(out)
    out.append(b"")
    key_bytes = key.encode()
    key_length = uvarint(len(key_bytes))
    out += (_MAP_KEY, key_length, key_bytes)
    size = len(_MAP_KEY) + len(key_length) + len(key_bytes)
    if isinstance(sub, _Plan):
        size += _encode_message(value, _MAP_VALUE, sub, out)
    else:
        value_bytes = value.encode()
        value_length = uvarint(len(value_bytes))
        out += (_MAP_VALUE, value_length, value_bytes)
        size += len(_MAP_VALUE) + len(value_length) + len(value_bytes)
    out[at] = length = uvarint(size)
    return len(tag) + len(length) + size


def encode_message(obj: Struct) -> bytes:
    """`obj` (any Struct of the schema) in protobuf wire format, without a length prefix."""
    out: list[Any] = []
    _encode_fields(obj, _PLANS[type(obj)], out)
    return b"".join(out)


# --- decoding --------------------------------------------------------------------


def _skip(buf: bytes, pos: int, end: int, wire: int) -> int:
    """The position after an unknown field's value."""
    if wire == VARINT:
        return read_uvarint(buf, pos, end)[1]
    if wire == LEN:
        length, pos = read_uvarint(buf, pos, end)
        stop = pos + length
    elif wire == I64:
        stop = pos + 8
    elif wire == I32:
        stop = pos + 4
    else:
        raise MalformedFrame(f"unsupported wire type {wire}")
    if stop > end:
        raise MalformedFrame("field length beyond the message")
    return stop


def _text(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise MalformedFrame("invalid UTF-8 in a string field") from None


def _decode_fields(buf: bytes, pos: int, end: int, plan: _Plan) -> Any:
    """The Struct of `plan` encoded in `buf[pos:end]`."""
    values: dict[str, Any] = {}
    by_number = plan.by_number
    while pos < end:
        key, pos = read_uvarint(buf, pos, end)
        number, wire = key >> 3, key & 7
        field = by_number.get(number)
        if field is None:
            if number == 0:
                raise MalformedFrame("field number 0")
            pos = _skip(buf, pos, end, wire)
            continue
        attr, expected, op, sub = field
        if wire != expected:
            raise MalformedFrame(f"field {number} of {plan.cls.__name__}: wire type {wire}")
        if op == _OP_VARINT:
            value, pos = read_uvarint(buf, pos, end)
            values[attr] = sub(value)
            continue
        length, pos = read_uvarint(buf, pos, end)
        stop = pos + length
        if stop > end:
            raise MalformedFrame(f"field {number} of {plan.cls.__name__}: length beyond buffer")
        if op == _OP_STRING:
            values[attr] = _text(buf[pos:stop])
        elif op == _OP_BYTES:
            values[attr] = raw(buf[pos:stop])
        elif op == _OP_MESSAGE:
            values[attr] = _decode_fields(buf, pos, stop, sub)
        elif op == _OP_REPEATED:
            item = _text(buf[pos:stop]) if sub is None else _decode_fields(buf, pos, stop, sub)
            values.setdefault(attr, []).append(item)
        else:
            entry_key, entry_value = _decode_map_entry(buf, pos, stop, sub)
            values.setdefault(attr, {})[entry_key] = entry_value
        pos = stop
    return plan.cls(**values)


def _decode_map_entry(buf: bytes, pos: int, end: int, sub: Any) -> tuple[str, Any]:
    key = ""
    value: Any = None
    while pos < end:
        tag, pos = read_uvarint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number not in (1, 2):
            if number == 0:
                raise MalformedFrame("field number 0")
            pos = _skip(buf, pos, end, wire)
            continue
        if wire != LEN:
            raise MalformedFrame(f"map entry field {number}: wire type {wire}")
        length, pos = read_uvarint(buf, pos, end)
        stop = pos + length
        if stop > end:
            raise MalformedFrame("map entry: length beyond buffer")
        if number == 1:
            key = _text(buf[pos:stop])
        elif isinstance(sub, _Plan):
            value = _decode_fields(buf, pos, stop, sub)
        else:
            value = _text(buf[pos:stop])
        pos = stop
    if value is None:
        value = sub.cls() if isinstance(sub, _Plan) else ""
    return key, value


def decode_message(data: bytes, cls: type[Struct]) -> Any:
    """A `cls` from its protobuf wire format (no length prefix); raises `MalformedFrame`."""
    return _decode_fields(data, 0, len(data), _PLANS[cls])


# --- the codec -------------------------------------------------------------------


class ProtobufCodec:
    """Commands from, and replies to, clients of the `centrifuge-protobuf` subprotocol.

    Each message in a frame is prefixed by its length as a uvarint. Stateless
    and cheap to share: one instance serves every protobuf connection.
    """

    name = "protobuf"
    binary = True
    expects_pong = True
    #: A server ping: an empty reply (length 0, no fields).
    ping = b"\x00"
    #: The WebSocket subprotocol that selects this encoding.
    subprotocol = "centrifuge-protobuf"

    def __init__(self, max_commands_per_frame: int = 128) -> None:
        self._max_commands = max_commands_per_frame

    def decode(self, frame: bytes) -> list[Command]:
        """The commands in one frame, in order. Raises `MalformedFrame`."""
        if not frame:
            raise MalformedFrame("empty frame")
        commands: list[Command] = []
        pos, end = 0, len(frame)
        while pos < end:
            length, pos = read_uvarint(frame, pos, end)
            stop = pos + length
            if stop > end:
                raise MalformedFrame("command length beyond the frame")
            commands.append(_decode_fields(frame, pos, stop, _COMMAND))
            if len(commands) > self._max_commands:
                raise MalformedFrame(f"more than {self._max_commands} commands in one frame")
            pos = stop
        return commands

    def encode(self, reply: Reply) -> bytes:
        """One reply (or push), prefixed by its length."""
        out: list[Any] = [b""]
        out[0] = uvarint(_encode_fields(reply, _REPLY, out))
        return b"".join(out)

    def join(self, messages: list[bytes]) -> bytes:
        """Several encoded replies as the payload of a single frame."""
        if len(messages) == 1:
            return messages[0]
        return b"".join(messages)


__all__ = ["MalformedFrame", "ProtobufCodec", "decode_message", "encode_message"]
