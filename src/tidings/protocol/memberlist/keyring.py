"""The AES-GCM keyring memberlist encrypts packets and streams with.

An encrypted payload is `[version][12-byte nonce][ciphertext + 16-byte tag]`.
Version 1 (what every current peer writes) seals the message as is; version 0
(protocol 1 peers) PKCS#7-pads it first. Keys are 16, 24 or 32 bytes (AES-128,
-192, -256); the primary key encrypts, every key is tried to decrypt, in order.
Packets use the cluster label as associated data; streams use the 5-byte
`[10][u32 length]` header followed by the label.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tidings.protocol.memberlist.errors import DecryptionError

VERSION_SIZE = 1
NONCE_SIZE = 12
TAG_SIZE = 16
BLOCK_SIZE = 16
MAX_VERSION = 1
VALID_KEY_SIZES = (16, 24, 32)


def encrypted_length(version: int, size: int) -> int:
    """Bytes that sealing `size` plaintext bytes takes."""
    if version >= 1:
        return VERSION_SIZE + NONCE_SIZE + size + TAG_SIZE
    return VERSION_SIZE + NONCE_SIZE + size + (BLOCK_SIZE - size % BLOCK_SIZE) + TAG_SIZE


def encrypt_overhead(version: int = 1) -> int:
    return 29 if version >= 1 else 45


class Keyring:
    """Installed keys, primary first. Immutable: build a new ring to rotate keys."""

    __slots__ = ("_ciphers", "keys")

    def __init__(self, keys: Iterable[bytes], primary: bytes | None = None) -> None:
        ordered = list(keys)
        if primary is not None:
            ordered = [primary, *(k for k in ordered if k != primary)]
        if not ordered:
            raise ValueError("a keyring needs at least one key")
        for key in ordered:
            if len(key) not in VALID_KEY_SIZES:
                raise ValueError("a key must be 16, 24 or 32 bytes (AES-128, AES-192, AES-256)")
        self.keys: tuple[bytes, ...] = tuple(dict.fromkeys(ordered))
        self._ciphers = tuple(AESGCM(k) for k in self.keys)

    @property
    def primary(self) -> bytes:
        return self.keys[0]

    def encrypt(
        self,
        message: bytes,
        associated: bytes = b"",
        *,
        version: int = 1,
        nonce: bytes | None = None,
    ) -> bytes:
        """Seal with the primary key. `nonce` is for test vectors only; default is random."""
        if nonce is None:
            nonce = os.urandom(NONCE_SIZE)
        elif len(nonce) != NONCE_SIZE:
            raise ValueError("the nonce is 12 bytes")
        if version == 0:
            pad = BLOCK_SIZE - len(message) % BLOCK_SIZE
            message = message + bytes((pad,)) * pad
        elif version != 1:
            raise ValueError("encryption version is 0 or 1")
        sealed = self._ciphers[0].encrypt(nonce, message, associated or None)
        return bytes((version,)) + nonce + sealed

    def decrypt(self, payload: bytes, associated: bytes = b"") -> bytes:
        """Open with the first key that works, or raise `DecryptionError`."""
        if not payload:
            raise DecryptionError("cannot decrypt an empty payload")
        version = payload[0]
        if version > MAX_VERSION:
            raise DecryptionError(f"unsupported encryption version {version}")
        if len(payload) < encrypted_length(version, 0):
            raise DecryptionError(f"payload too small to decrypt: {len(payload)} bytes")
        nonce = payload[VERSION_SIZE : VERSION_SIZE + NONCE_SIZE]
        sealed = payload[VERSION_SIZE + NONCE_SIZE :]
        for cipher in self._ciphers:
            try:
                plain = cipher.decrypt(nonce, sealed, associated or None)
            except InvalidTag:
                continue
            if version == 0:
                return _unpad(plain)
            return plain
        raise DecryptionError("no installed key could decrypt the message")


def _unpad(plain: bytes) -> bytes:
    if not plain or plain[-1] == 0 or plain[-1] > BLOCK_SIZE or plain[-1] > len(plain):
        raise DecryptionError("bad PKCS#7 padding in a version 0 payload")
    return plain[: -plain[-1]]


def keyring_from(keys: Sequence[bytes] | None) -> Keyring | None:
    """A keyring from a list of keys (first is primary), or None for no encryption."""
    return Keyring(keys) if keys else None
