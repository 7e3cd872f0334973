"""Payloads of server API requests: `data`, or the same given in base64 (`b64data`)."""

from __future__ import annotations

import base64
import binascii

from msgspec import Raw

from tidings.core.commands import checked_payload
from tidings.errors import ReplyError
from tidings.protocol.centrifuge.codes import ErrorCode


def optional_payload(data: Raw, b64: str, name: str) -> Raw:
    """`data`, or the payload given in base64 as `b64` (which wins, as in Centrifugo).

    The decoded bytes must be one JSON value, checked and compacted like any
    payload: every publication also goes to JSON clients, which receive
    payloads verbatim inside their JSON frames (Centrifugo sends them even
    when they are not JSON, breaking those frames).
    """
    if not b64:
        return data
    try:
        decoded = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ReplyError(ErrorCode.BAD_REQUEST, f"{name} is not valid base64") from None
    return checked_payload(decoded, name) if decoded else data
