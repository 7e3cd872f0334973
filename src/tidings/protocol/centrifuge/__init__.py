"""The Centrifuge v2 client protocol (JSON encoding), sans-I/O."""

from tidings.protocol.centrifuge.codes import Disconnect, ErrorCode, ReplyErrorInfo
from tidings.protocol.centrifuge.json_codec import JsonCodec
from tidings.protocol.centrifuge.session import SessionState, SessionViolation

__all__ = [
    "Disconnect",
    "ErrorCode",
    "JsonCodec",
    "ReplyErrorInfo",
    "SessionState",
    "SessionViolation",
]
