"""The one exception family of `tidings.protocol.memberlist`.

    MemberlistError            anything this package refuses
    ├── DecodeError            malformed, truncated, oversized or unknown input
    │   └── DecryptionError    no key of the keyring opens the payload
    └── Incomplete             a stream frame needs more bytes (not an error of the peer)

Decoders raise nothing else, whatever the bytes: a fuzz test holds them to it.
"""

from __future__ import annotations


class MemberlistError(Exception):
    """Base class of every error raised by the memberlist protocol package."""


class DecodeError(MemberlistError):
    """The bytes are not a valid memberlist packet, stream frame or message."""


class DecryptionError(DecodeError):
    """An encrypted payload that none of the installed keys can open."""


class Incomplete(MemberlistError):
    """A stream frame is cut short: read more bytes and try again."""
