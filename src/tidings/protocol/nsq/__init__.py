"""NSQ's wire protocols, sans-I/O.

The TCP protocol V2 (commands in, frames out, a client state table) is exported
here; `lookup` holds nsqlookupd's registration protocol.
"""

from tidings.protocol.nsq.codes import ErrorCode, NsqError
from tidings.protocol.nsq.commands import (
    Auth,
    Cls,
    Command,
    Dpub,
    Fin,
    Identify,
    Mpub,
    Nop,
    Pub,
    Rdy,
    Req,
    Sub,
    Touch,
)
from tidings.protocol.nsq.frames import (
    CLOSE_WAIT,
    HEARTBEAT,
    MAGIC_V2,
    OK,
    Frame,
    FrameReader,
    FrameType,
    MessageFrame,
    encode_error,
    encode_message,
    encode_response,
    message_id,
    message_number,
)
from tidings.protocol.nsq.identify import (
    ClientSettings,
    IdentifyLimits,
    default_settings,
    identify_reply,
    parse_identify,
)
from tidings.protocol.nsq.names import is_ephemeral, is_valid_name
from tidings.protocol.nsq.parser import CommandParser
from tidings.protocol.nsq.states import ClientState, Rule, next_state, rule

__all__ = [
    "CLOSE_WAIT",
    "HEARTBEAT",
    "MAGIC_V2",
    "OK",
    "Auth",
    "ClientSettings",
    "ClientState",
    "Cls",
    "Command",
    "CommandParser",
    "Dpub",
    "ErrorCode",
    "Fin",
    "Frame",
    "FrameReader",
    "FrameType",
    "Identify",
    "IdentifyLimits",
    "MessageFrame",
    "Mpub",
    "Nop",
    "NsqError",
    "Pub",
    "Rdy",
    "Req",
    "Rule",
    "Sub",
    "Touch",
    "default_settings",
    "encode_error",
    "encode_message",
    "encode_response",
    "identify_reply",
    "is_ephemeral",
    "is_valid_name",
    "message_id",
    "message_number",
    "next_state",
    "parse_identify",
    "rule",
]
