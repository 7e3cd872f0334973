"""The streaming command parser: bytes in, typed commands out, bounded memory.

`CommandParser.receive(data)` buffers bytes; `next_command()` returns the
next complete command, None when more bytes are needed, or raises the fatal
`NsqError` nsqd would send. It parses one command at a time so that a state
change (SUB, CLS) applies to the commands after it: the connection sets
`state` (and `heartbeats_enabled` after IDENTIFY) between calls.

Bounds: a command line longer than `max_line` is refused before its newline
arrives; a body length is checked against `max_msg_size` (PUB, DPUB) or
`max_body_size` (MPUB, IDENTIFY, AUTH) before the body is buffered. So the
buffer never holds more than one line, one length and one allowed body plus
whatever the connection lets it read ahead (`buffered`).

After an error the parser is dead: the connection must close.
"""

from __future__ import annotations

import struct

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
from tidings.protocol.nsq.frames import MAGIC_V2, MESSAGE_ID_LENGTH
from tidings.protocol.nsq.names import is_valid_name
from tidings.protocol.nsq.states import VERBS, ClientState, Rule, rule

_LENGTH = struct.Struct(">i")
_MAX_DIGITS = 18

DEFAULT_MAX_LINE = 4096
_VERB_NAMES = {verb.encode(): verb for verb in VERBS}


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def base10(raw: bytes) -> int | None:
    """nsqd's unsigned decimal: digits only ('' is 0); None if not a number."""
    if len(raw) > _MAX_DIGITS or not all(48 <= b <= 57 for b in raw):
        return None
    return int(raw) if raw else 0


class CommandParser:
    """Parses the client side of one V2 connection."""

    def __init__(
        self,
        max_msg_size: int = 1 << 20,
        max_body_size: int = 5 << 20,
        max_rdy_count: int = 2500,
        max_req_timeout_ms: int = 3_600_000,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        self.max_msg_size = max_msg_size
        self.max_body_size = max_body_size
        self.max_rdy_count = max_rdy_count
        self.max_req_timeout_ms = max_req_timeout_ms
        self.max_line = max_line
        self.state = ClientState.INIT
        self.heartbeats_enabled = True
        self._buffer = bytearray()
        self._magic_seen = False
        self._dead: NsqError | None = None
        # A command line whose body has not fully arrived: (params, body limit, error code).
        self._pending: list[bytes] | None = None
        self._body_size = -1

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed."""
        return len(self._buffer)

    def receive(self, data: bytes) -> None:
        if self._dead is None:
            self._buffer += data

    def next_command(self) -> Command | None:
        """The next complete command, None if incomplete; raises `NsqError` (fatal)."""
        if self._dead is not None:
            raise self._dead
        try:
            return self._next()
        except NsqError as exc:
            self._dead = exc
            self._buffer.clear()
            raise

    # -- internals ---------------------------------------------------------

    def _next(self) -> Command | None:
        buffer = self._buffer
        if not self._magic_seen:
            if len(buffer) < 4:
                if bytes(buffer) != MAGIC_V2[: len(buffer)]:
                    raise NsqError(ErrorCode.BAD_PROTOCOL)
                return None
            if bytes(buffer[:4]) != MAGIC_V2:
                raise NsqError(ErrorCode.BAD_PROTOCOL)
            del buffer[:4]
            self._magic_seen = True
        if self._pending is None:
            end = buffer.find(b"\n", 0, self.max_line + 1)
            if end < 0:
                if len(buffer) > self.max_line:
                    raise NsqError(ErrorCode.INVALID, "command line too long")
                return None
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            params = line.split(b" ")
            command = self._line_command(params)
            if command is not None:
                return command
            self._pending = params
        return self._body_command(self._pending)

    def _check_state(self, verb: str) -> bool:
        """False if the command is to be ignored; raises if it is not allowed."""
        decision = rule(self.state, verb)
        if decision is Rule.REJECT:
            raise NsqError(ErrorCode.INVALID, f"cannot {verb} in current state")
        return decision is Rule.ALLOW

    def _line_command(self, params: list[bytes]) -> Command | None:
        """A command without body, or None after checking the line of one with a body."""
        verb_raw = params[0]
        verb = _VERB_NAMES.get(verb_raw)
        if verb is None:
            raise NsqError(ErrorCode.INVALID, f"invalid command {_text(verb_raw)}")
        if verb == "NOP":
            return Nop()
        if verb in ("PUB", "MPUB", "DPUB"):
            self._check_publish_line(verb, params)
            return None
        if not self._check_state(verb):
            return Nop()  # RDY after CLS: ignored
        if verb == "IDENTIFY":
            return None
        if verb == "AUTH":
            if len(params) != 1:
                raise NsqError(ErrorCode.INVALID, "AUTH invalid number of parameters")
            return None
        if verb == "SUB":
            return self._sub(params)
        if verb == "RDY":
            return self._rdy(params)
        if verb == "CLS":
            return Cls()
        return self._message_command(verb, params)

    def _sub(self, params: list[bytes]) -> Sub:
        if not self.heartbeats_enabled:
            raise NsqError(ErrorCode.INVALID, "cannot SUB with heartbeats disabled")
        if len(params) < 3:
            raise NsqError(ErrorCode.INVALID, "SUB insufficient number of parameters")
        topic, channel = _text(params[1]), _text(params[2])
        if not is_valid_name(topic):
            raise NsqError(ErrorCode.BAD_TOPIC, f'SUB topic name "{topic}" is not valid')
        if not is_valid_name(channel):
            raise NsqError(ErrorCode.BAD_CHANNEL, f'SUB channel name "{channel}" is not valid')
        return Sub(topic, channel)

    def _rdy(self, params: list[bytes]) -> Rdy:
        count = 1
        if len(params) > 1:
            parsed = base10(params[1])
            if parsed is None:
                raise NsqError(ErrorCode.INVALID, f"RDY could not parse count {_text(params[1])}")
            count = parsed
        if count > self.max_rdy_count:
            raise NsqError(
                ErrorCode.INVALID, f"RDY count {count} out of range 0-{self.max_rdy_count}"
            )
        return Rdy(count)

    def _message_command(self, verb: str, params: list[bytes]) -> Command:
        needed = 3 if verb == "REQ" else 2
        if len(params) < needed:
            raise NsqError(ErrorCode.INVALID, f"{verb} insufficient number of params")
        message_id = params[1]
        if len(message_id) != MESSAGE_ID_LENGTH:
            raise NsqError(ErrorCode.INVALID, "invalid message ID")
        if verb == "FIN":
            return Fin(message_id)
        if verb == "TOUCH":
            return Touch(message_id)
        timeout = base10(params[2])
        if timeout is None:
            raise NsqError(ErrorCode.INVALID, f"REQ could not parse timeout {_text(params[2])}")
        return Req(message_id, min(timeout, self.max_req_timeout_ms))

    def _check_publish_line(self, verb: str, params: list[bytes]) -> None:
        needed = 3 if verb == "DPUB" else 2
        if len(params) < needed:
            raise NsqError(ErrorCode.INVALID, f"{verb} insufficient number of parameters")
        topic = _text(params[1])
        if not is_valid_name(topic):
            prefix = "E_BAD_TOPIC " if verb == "MPUB" else ""  # nsqd repeats the code for MPUB
            raise NsqError(ErrorCode.BAD_TOPIC, f'{prefix}{verb} topic name "{topic}" is not valid')
        if verb == "DPUB":
            defer = base10(params[2])
            if defer is None:
                raise NsqError(
                    ErrorCode.INVALID, f"DPUB could not parse timeout {_text(params[2])}"
                )
            if defer > self.max_req_timeout_ms:
                raise NsqError(
                    ErrorCode.INVALID,
                    f"DPUB timeout {defer} out of range 0-{self.max_req_timeout_ms}",
                )

    def _body_limit(self, verb: str) -> tuple[int, ErrorCode, str]:
        if verb in ("PUB", "DPUB"):
            return self.max_msg_size, ErrorCode.BAD_MESSAGE, "message body size"
        return self.max_body_size, ErrorCode.BAD_BODY, "body size"

    def _body_command(self, params: list[bytes]) -> Command | None:
        buffer = self._buffer
        verb = params[0].decode("ascii")
        if self._body_size < 0:
            if len(buffer) < 4:
                return None
            (size,) = _LENGTH.unpack_from(buffer)
            limit, code, what = self._body_limit(verb)
            if size <= 0:
                raise NsqError(code, f"{verb} invalid {what} {size}")
            if size > limit:
                kind = "message" if code is ErrorCode.BAD_MESSAGE else "body"
                raise NsqError(code, f"{verb} {kind} too big {size} > {limit}")
            del buffer[:4]
            self._body_size = size
        size = self._body_size
        if len(buffer) < size:
            return None
        body = bytes(buffer[:size])
        del buffer[:size]
        self._pending = None
        self._body_size = -1
        if verb == "PUB":
            return Pub(_text(params[1]), body)
        if verb == "DPUB":
            return Dpub(_text(params[1]), base10(params[2]) or 0, body)
        if verb == "MPUB":
            return Mpub(_text(params[1]), self._split_mpub(body))
        if verb == "IDENTIFY":
            return Identify(body)
        return Auth(body)

    def _split_mpub(self, body: bytes) -> tuple[bytes, ...]:
        if len(body) < 4:
            raise NsqError(ErrorCode.BAD_BODY, "MPUB failed to read message count")
        (count,) = _LENGTH.unpack_from(body)
        if count <= 0 or count > (self.max_body_size - 4) // 5:
            raise NsqError(ErrorCode.BAD_BODY, f"MPUB invalid message count {count}")
        bodies: list[bytes] = []
        offset = 4
        for index in range(count):
            if len(body) - offset < 4:
                raise NsqError(
                    ErrorCode.BAD_MESSAGE, f"MPUB failed to read message({index}) body size"
                )
            (size,) = _LENGTH.unpack_from(body, offset)
            offset += 4
            if size <= 0:
                raise NsqError(
                    ErrorCode.BAD_MESSAGE, f"MPUB invalid message({index}) body size {size}"
                )
            if size > self.max_msg_size:
                raise NsqError(
                    ErrorCode.BAD_MESSAGE, f"MPUB message too big {size} > {self.max_msg_size}"
                )
            if len(body) - offset < size:
                raise NsqError(ErrorCode.BAD_MESSAGE, "MPUB failed to read message body")
            bodies.append(body[offset : offset + size])
            offset += size
        if offset != len(body):
            raise NsqError(ErrorCode.BAD_BODY, "MPUB body size does not match its messages")
        return tuple(bodies)
