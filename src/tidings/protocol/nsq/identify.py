"""IDENTIFY: the client's JSON body, its validation, and the negotiation reply.

Unknown fields are ignored. Values out of range are fatal `E_BAD_BODY`
errors worded like nsqd's. With `feature_negotiation` the reply is JSON and
always carries `max_rdy_count`; a feature (TLS, snappy, deflate) is reported
true only when the client asked for it and the server supports it, and this
server supports none of them, so they are always false.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from tidings.protocol.nsq.codes import ErrorCode, NsqError


class IdentifyRequest(msgspec.Struct, kw_only=True):
    """The fields of the IDENTIFY body that matter (others are ignored)."""

    client_id: str = ""
    hostname: str = ""
    user_agent: str = ""
    heartbeat_interval: int = 0
    output_buffer_size: int = 0
    output_buffer_timeout: int = 0
    sample_rate: int = 0
    msg_timeout: int = 0
    feature_negotiation: bool = False
    tls_v1: bool = False
    snappy: bool = False
    deflate: bool = False
    deflate_level: int = 0


class IdentifyReply(msgspec.Struct):
    """The negotiation reply (nsqd's field names)."""

    max_rdy_count: int
    version: str
    max_msg_timeout: int
    msg_timeout: int
    tls_v1: bool
    deflate: bool
    deflate_level: int
    max_deflate_level: int
    snappy: bool
    sample_rate: int
    auth_required: bool
    output_buffer_size: int
    output_buffer_timeout: int


@dataclass(frozen=True, slots=True)
class IdentifyLimits:
    """Server limits that IDENTIFY values are checked against (milliseconds, bytes)."""

    max_rdy_count: int = 2500
    version: str = "1.3.0"
    msg_timeout_ms: int = 60_000
    max_msg_timeout_ms: int = 15 * 60_000
    heartbeat_interval_ms: int = 30_000
    max_heartbeat_interval_ms: int = 60_000
    output_buffer_size: int = 16 * 1024
    max_output_buffer_size: int = 64 * 1024
    output_buffer_timeout_ms: int = 250
    min_output_buffer_timeout_ms: int = 1
    max_output_buffer_timeout_ms: int = 30_000
    max_deflate_level: int = 6


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """What the connection uses after IDENTIFY (0 heartbeat means off)."""

    client_id: str
    hostname: str
    user_agent: str
    heartbeat_interval_ms: int
    msg_timeout_ms: int
    output_buffer_size: int
    output_buffer_timeout_ms: int
    feature_negotiation: bool


def default_settings(limits: IdentifyLimits) -> ClientSettings:
    """The settings of a client that never sends IDENTIFY."""
    return ClientSettings(
        "",
        "",
        "",
        limits.heartbeat_interval_ms,
        limits.msg_timeout_ms,
        limits.output_buffer_size,
        limits.output_buffer_timeout_ms,
        False,
    )


_decoder = msgspec.json.Decoder(IdentifyRequest)


def _bad(message: str) -> NsqError:
    return NsqError(ErrorCode.BAD_BODY, "IDENTIFY " + message)


def parse_identify(body: bytes, limits: IdentifyLimits) -> ClientSettings:
    """Decode and check an IDENTIFY body; raise the fatal error nsqd would."""
    try:
        request = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise NsqError(ErrorCode.BAD_BODY, "IDENTIFY failed to decode JSON body") from exc
    heartbeat = request.heartbeat_interval
    if heartbeat == -1:
        heartbeat = 0
    elif heartbeat == 0:
        heartbeat = limits.heartbeat_interval_ms
    elif not 1000 <= heartbeat <= limits.max_heartbeat_interval_ms:
        raise _bad(f"heartbeat interval ({heartbeat}) is invalid")
    timeout = request.output_buffer_timeout
    if timeout == -1:
        timeout = 0
    elif timeout == 0:
        timeout = limits.output_buffer_timeout_ms
    elif not limits.min_output_buffer_timeout_ms <= timeout <= limits.max_output_buffer_timeout_ms:
        raise _bad(f"output buffer timeout ({timeout}) is invalid")
    size = request.output_buffer_size
    if size == -1:
        size, timeout = 1, 0
    elif size == 0:
        size = limits.output_buffer_size
    elif not 64 <= size <= limits.max_output_buffer_size:
        raise _bad(f"output buffer size ({size}) is invalid")
    if not 0 <= request.sample_rate <= 99:
        raise _bad(f"sample rate ({request.sample_rate}) is invalid")
    msg_timeout = request.msg_timeout
    if msg_timeout == 0:
        msg_timeout = limits.msg_timeout_ms
    elif not 1000 <= msg_timeout <= limits.max_msg_timeout_ms:
        raise _bad(f"msg timeout ({msg_timeout}) is invalid")
    return ClientSettings(
        request.client_id,
        request.hostname,
        request.user_agent,
        heartbeat,
        msg_timeout,
        size,
        timeout,
        request.feature_negotiation,
    )


def identify_reply(settings: ClientSettings, limits: IdentifyLimits) -> bytes:
    """The response body to a valid IDENTIFY: `OK`, or JSON when negotiating."""
    if not settings.feature_negotiation:
        return b"OK"
    reply = IdentifyReply(
        max_rdy_count=limits.max_rdy_count,
        version=limits.version,
        max_msg_timeout=limits.max_msg_timeout_ms,
        msg_timeout=settings.msg_timeout_ms,
        tls_v1=False,
        deflate=False,
        deflate_level=6,
        max_deflate_level=limits.max_deflate_level,
        snappy=False,
        sample_rate=0,
        auth_required=False,
        output_buffer_size=settings.output_buffer_size,
        output_buffer_timeout=settings.output_buffer_timeout_ms,
    )
    return msgspec.json.encode(reply)
