"""The Centrifuge v2 client protocol (JSON and Protobuf encodings), sans-I/O."""

from tidings.protocol.centrifuge.codes import Disconnect, ErrorCode, ReplyErrorInfo
from tidings.protocol.centrifuge.json_codec import JsonCodec
from tidings.protocol.centrifuge.protobuf_codec import ProtobufCodec
from tidings.protocol.centrifuge.session import SessionState, SessionViolation

__all__ = [
    "Disconnect",
    "ErrorCode",
    "JsonCodec",
    "ProtobufCodec",
    "ReplyErrorInfo",
    "SessionState",
    "SessionViolation",
]
