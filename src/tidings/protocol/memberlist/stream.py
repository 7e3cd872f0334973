"""TCP streams: push-pull state exchange, fallback pings, reliable user messages.

A stream carries one frame each way: optional label header, then either
`[10][u32 length][sealed]` (encryption; the 5 header bytes and the label are
the associated data) or the plain frame, which may be `[9]{Algo, Buf}`
(compression) around the real one. A push-pull frame is `[6]` + header map +
`Nodes` node-state maps + `UserStateLen` raw bytes; a user message is `[8]` +
`{UserMsgLen}` + bytes.

`decode_stream` works on what has arrived so far and raises `Incomplete` until
a whole frame is there, so the I/O layer just reads and retries (with a limit).
"""

from __future__ import annotations

import struct

from tidings.protocol.memberlist.errors import DecodeError, Incomplete
from tidings.protocol.memberlist.gomsgpack import pack_struct, unpack_one
from tidings.protocol.memberlist.keyring import Keyring, encrypted_length
from tidings.protocol.memberlist.label import label_header, split_label
from tidings.protocol.memberlist.messages import (
    Ack,
    ErrorResponse,
    MessageType,
    Ping,
    PushNodeState,
    PushPull,
    PushPullHeader,
    StreamMessage,
    User,
    UserMessageHeader,
    decode_struct,
    encode_message,
)
from tidings.protocol.memberlist.packet import compress_message, decompress_message

MAX_PUSH_STATE_BYTES = 20 * 1024 * 1024
MAX_PUSH_STATE_NODES = 1024 * 1024
MAX_USER_MSG_BYTES = 20 * 1024 * 1024
MAX_STREAM_DECOMPRESSED = 2 * MAX_PUSH_STATE_BYTES


def encode_push_pull(frame: PushPull) -> bytes:
    out = bytearray((MessageType.PUSH_PULL,))
    header = PushPullHeader(len(frame.nodes), len(frame.user_state), frame.join)
    pack_struct(out, zip(header.FIELDS, header.values(), strict=True))
    for node in frame.nodes:
        pack_struct(out, zip(node.FIELDS, node.values(), strict=True))
    out += frame.user_state
    return bytes(out)


def encode_user_frame(payload: bytes) -> bytes:
    out = bytearray((MessageType.USER,))
    header = UserMessageHeader(len(payload))
    pack_struct(out, zip(header.FIELDS, header.values(), strict=True))
    return bytes(out) + payload


def encode_frame(message: StreamMessage) -> bytes:
    """The plain frame of a stream message (before compression and encryption)."""
    if isinstance(message, PushPull):
        return encode_push_pull(message)
    if isinstance(message, User):
        return encode_user_frame(message.payload)
    return encode_message(message)


def encode_stream(
    message: StreamMessage,
    *,
    compress: bool = False,
    keyring: Keyring | None = None,
    label: str = "",
    dialer: bool = True,
    nonce: bytes | None = None,
) -> bytes:
    """Everything one side writes on a stream, as `rawSendMsgStream` does. The
    label header is sent by the dialer only (`dialer=False` when answering); the
    label is part of the associated data both ways."""
    frame = encode_frame(message)
    if compress:
        frame = compress_message(frame)
    if keyring is not None:
        header = bytes((MessageType.ENCRYPT,)) + struct.pack(">I", encrypted_length(1, len(frame)))
        frame = header + keyring.encrypt(frame, header + label.encode(), nonce=nonce)
    return (label_header(label) if dialer else b"") + frame


def decode_stream(
    buf: bytes,
    *,
    keyring: Keyring | None = None,
    label: str = "",
    expect_label: bool = True,
    verify_incoming: bool = True,
) -> tuple[StreamMessage, int]:
    """Decode the frame at the start of `buf`: (message, bytes consumed).

    `expect_label=False` when reading the answer on a stream we dialled (the
    label header travels once, from the dialer). Raises `Incomplete` when more
    bytes are needed and `DecodeError` when the stream must be dropped.
    """
    offset = 0
    if expect_label:
        stream_label, offset = split_label(buf, complete=False)
        if stream_label != label:
            raise DecodeError(f"stream with unacceptable label {stream_label!r}")
    if len(buf) <= offset:
        raise Incomplete("stream frame needs its type byte")
    kind = buf[offset]
    if kind == MessageType.ENCRYPT:
        if keyring is None:
            raise DecodeError("remote stream is encrypted and encryption is not configured")
        if len(buf) < offset + 5:
            raise Incomplete("encrypted frame header")
        (size,) = struct.unpack_from(">I", buf, offset + 1)
        if size > MAX_PUSH_STATE_BYTES:
            raise DecodeError(f"remote state of {size} bytes is over the limit")
        end = offset + 5 + size
        if len(buf) < end:
            raise Incomplete("encrypted frame body")
        header = bytes(buf[offset : offset + 5])
        plain = keyring.decrypt(bytes(buf[offset + 5 : end]), header + label.encode())
        message, _ = _decode_plain(plain, 0, complete=True)
        return message, end
    if keyring is not None and verify_incoming:
        raise DecodeError("encryption is configured but the remote stream is not encrypted")
    return _decode_plain(buf, offset, complete=False)


def _decode_plain(buf: bytes, offset: int, *, complete: bool) -> tuple[StreamMessage, int]:
    if len(buf) <= offset:
        if complete:
            raise DecodeError("empty stream frame")
        raise Incomplete("stream frame needs its type byte")
    if buf[offset] == MessageType.COMPRESS:
        _, end = unpack_one(buf, offset + 1, complete=complete)
        plain = decompress_message(bytes(buf[offset + 1 : end]), MAX_STREAM_DECOMPRESSED)
        if not plain:
            raise DecodeError("decompressed message is empty")
        message, _ = _decode_body(plain, 0, complete=True)
        return message, end
    return _decode_body(buf, offset, complete=complete)


def _decode_body(buf: bytes, offset: int, *, complete: bool) -> tuple[StreamMessage, int]:
    kind = buf[offset]
    pos = offset + 1
    if kind == MessageType.PUSH_PULL:
        value, pos = unpack_one(buf, pos, complete=complete)
        header = decode_struct(PushPullHeader, value)
        if not 0 <= header.nodes <= MAX_PUSH_STATE_NODES:
            raise DecodeError(f"push-pull header claims {header.nodes} nodes")
        if not 0 <= header.user_state_len <= MAX_PUSH_STATE_BYTES:
            raise DecodeError(f"push-pull user state of {header.user_state_len} bytes")
        nodes: list[PushNodeState] = []
        for _ in range(header.nodes):
            value, pos = unpack_one(buf, pos, complete=complete)
            nodes.append(decode_struct(PushNodeState, value))
        end = pos + header.user_state_len
        if len(buf) < end:
            if complete:
                raise DecodeError("push-pull user state truncated")
            raise Incomplete("push-pull user state")
        return PushPull(header.join, tuple(nodes), bytes(buf[pos:end])), end
    if kind == MessageType.USER:
        value, pos = unpack_one(buf, pos, complete=complete)
        user_header = decode_struct(UserMessageHeader, value)
        if not 0 <= user_header.user_msg_len <= MAX_USER_MSG_BYTES:
            raise DecodeError(f"user message of {user_header.user_msg_len} bytes")
        end = pos + user_header.user_msg_len
        if len(buf) < end:
            if complete:
                raise DecodeError("user message truncated")
            raise Incomplete("user message")
        return User(bytes(buf[pos:end])), end
    cls = {MessageType.PING: Ping, MessageType.ACK: Ack, MessageType.ERR: ErrorResponse}.get(
        MessageType(kind) if kind in MessageType._value2member_map_ else MessageType.HAS_LABEL
    )
    if cls is None:
        raise DecodeError(f"message type {kind} not valid on a stream")
    value, pos = unpack_one(buf, pos, complete=complete)
    message: StreamMessage = decode_struct(cls, value)
    return message, pos
