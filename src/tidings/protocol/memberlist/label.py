"""Cluster labels (memberlist >= 0.3): `[244][length u8][label]` in front of a packet
or at the start of a stream. A member drops traffic whose label is not its own;
an unlabelled member accepts only unlabelled traffic."""

from __future__ import annotations

from tidings.protocol.memberlist.errors import DecodeError, Incomplete
from tidings.protocol.memberlist.messages import MessageType

LABEL_MAX_SIZE = 255


def label_header(label: str) -> bytes:
    """The bytes to put in front of a packet or stream ('' → nothing)."""
    raw = label.encode()
    if not raw:
        return b""
    if len(raw) > LABEL_MAX_SIZE:
        raise ValueError(f"label {label!r} is longer than {LABEL_MAX_SIZE} bytes")
    return bytes((MessageType.HAS_LABEL, len(raw))) + raw


def split_label(buf: bytes, *, complete: bool = True) -> tuple[str, int]:
    """(label, offset of what follows) of a packet or stream start; ('', 0) if none.

    `complete=False` (a stream still arriving) raises `Incomplete` instead of
    `DecodeError` when the header is cut short.
    """
    if not buf or buf[0] != MessageType.HAS_LABEL:
        if not buf and not complete:
            raise Incomplete("empty stream")
        return "", 0
    short = DecodeError if complete else Incomplete
    if len(buf) < 2:
        raise short("label header truncated")
    size = buf[1]
    if size < 1:
        raise DecodeError("label header cannot be empty when present")
    if len(buf) < 2 + size:
        raise short("label header truncated")
    return buf[2 : 2 + size].decode("utf-8", "surrogateescape"), 2 + size
