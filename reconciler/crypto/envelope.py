"""The stored form of one encrypted credential (``docs/credential-format.md``).

Bytes: version (1) | key id length (1) | key id | nonce (12) | AES-256-GCM ciphertext + tag (16).
Text:  ``rcv1:`` + unpadded base64url of those bytes.

This module only lays out and parses; it holds no keys. Parsing is strict (one canonical text
per byte string) so that a changed character can never decode to the same bytes unnoticed.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from reconciler.core.errors import CryptoError
from reconciler.crypto.address import CredentialAddress, length_prefixed
from reconciler.crypto.keys import is_key_id

VERSION = 1
PREFIX = "rcv1:"
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_TEXT = 1 << 20
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Envelope:
    """The parts of one envelope. ``sealed`` is the ciphertext followed by the 16-byte tag."""

    key_id: str
    nonce: bytes
    sealed: bytes
    version: int = VERSION

    def to_bytes(self) -> bytes:
        key_id = self.key_id.encode("ascii")
        return bytes([self.version, len(key_id)]) + key_id + self.nonce + self.sealed

    def to_text(self) -> str:
        return PREFIX + base64.urlsafe_b64encode(self.to_bytes()).decode("ascii").rstrip("=")


def associated_data(version: int, key_id: str, address: CredentialAddress) -> bytes:
    """What the tag binds besides the plaintext: version, key id and the credential's address."""
    return length_prefixed(bytes([version]), key_id.encode("ascii"), *address.parts())


def parse(text: object, where: str) -> Envelope:
    """Split envelope text into its parts, or raise CryptoError naming ``where`` (the credential).

    The message never repeats the value: a non-envelope value may be a plaintext secret
    stored by mistake, and it is refused, never used as it is.
    """
    raw = _decode_text(text, where)
    return _parse_bytes(raw, where)


def _decode_text(text: object, where: str) -> bytes:
    if not isinstance(text, str) or not text.startswith(PREFIX) or len(text) > MAX_TEXT:
        raise CryptoError(
            f"{where} is not an encrypted envelope (expected text starting "
            f"with {PREFIX!r}); it is refused and not used as plaintext."
        )
    body = text[len(PREFIX) :]
    if not _BASE64URL.fullmatch(body) or len(body) % 4 == 1:
        raise CryptoError(f"{where}: the envelope is not valid base64url text.")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise CryptoError(f"{where}: the envelope is not valid base64url text.") from None
    if base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != body:
        raise CryptoError(f"{where}: the envelope text was altered.")
    return raw


def _parse_bytes(raw: bytes, where: str) -> Envelope:
    if len(raw) < 2 or raw[0] != VERSION:
        raise CryptoError(f"{where}: unsupported envelope version or truncated envelope.")
    id_end = 2 + raw[1]
    if len(raw) < id_end + NONCE_BYTES + TAG_BYTES:
        raise CryptoError(f"{where}: the envelope is truncated.")
    try:
        key_id = raw[2:id_end].decode("ascii")
    except UnicodeDecodeError:
        key_id = ""
    if not is_key_id(key_id):
        raise CryptoError(f"{where}: the envelope's key id is malformed.")
    nonce = raw[id_end : id_end + NONCE_BYTES]
    return Envelope(key_id=key_id, nonce=nonce, sealed=raw[id_end + NONCE_BYTES :])
