"""A second implementation of docs/credential-format.md, written from that document alone.

It imports nothing from ``reconciler``: if the package and the document drift apart, the tests
that compare the two fail. HKDF and HMAC are built from the standard library as the document
spells them out; only AES-GCM comes from ``cryptography``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
LABELS = {
    "encryption": b"reconciler/credential-encryption/v1",
    "fingerprint": b"reconciler/credential-fingerprint/v1",
    "audit": b"reconciler/audit-log/v1",
}


class FormatError(Exception):
    """The value does not follow the document."""


def read_ring(value: str) -> dict[str, bytes]:
    """Section 1: ``KEY_ID:BASE64`` entries, in order; the first is the primary key."""
    ring: dict[str, bytes] = {}
    for entry in value.split(","):
        key_id, _, encoded = entry.strip().partition(":")
        if not KEY_ID.fullmatch(key_id) or key_id in ring:
            raise FormatError("bad key id")
        master = base64.b64decode(encoded, validate=True)
        if len(master) != 32 or base64.b64encode(master).decode() != encoded:
            raise FormatError("bad key")
        ring[key_id] = master
    return ring


def subkey(master: bytes, purpose: str) -> bytes:
    """Section 2: HKDF-SHA256 with no salt, one output block."""
    prk = hmac.new(bytes(32), master, hashlib.sha256).digest()
    return hmac.new(prk, LABELS[purpose] + b"\x01", hashlib.sha256).digest()


def item(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def aad(version: int, key_id: str, org: str, provider: str, user: str, field: str) -> bytes:
    """Section 3."""
    parts = [bytes([version]), key_id.encode()] + [s.encode() for s in (org, provider, user, field)]
    return b"".join(item(p) for p in parts)


def envelope_bytes(text: str) -> bytes:
    """Section 5: strip ``rcv1:``, decode canonical unpadded base64url."""
    if not text.startswith("rcv1:"):
        raise FormatError("not an envelope")
    body = text[5:]
    if re.fullmatch(r"[A-Za-z0-9_-]*", body) is None or len(body) % 4 == 1:
        raise FormatError("bad base64url")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    if base64.urlsafe_b64encode(raw).decode().rstrip("=") != body:
        raise FormatError("not canonical")
    return raw


def split(raw: bytes) -> tuple[int, str, bytes, bytes]:
    """Section 4: version, key id, nonce, ciphertext||tag."""
    if len(raw) < 2 or raw[0] != 1:
        raise FormatError("bad version")
    length = raw[1]
    if len(raw) < 2 + length + 12 + 16:
        raise FormatError("truncated")
    key_id = raw[2 : 2 + length].decode("ascii")
    if not KEY_ID.fullmatch(key_id):
        raise FormatError("bad key id")
    return raw[0], key_id, raw[2 + length : 14 + length], raw[14 + length :]


def decrypt(ring_value: str, text: str, org: str, provider: str, user: str, field: str) -> str:
    """Section 6, steps 1 to 6."""
    version, key_id, nonce, sealed = split(envelope_bytes(text))
    ring = read_ring(ring_value)
    if key_id not in ring:
        raise FormatError("unknown key id")
    key = subkey(ring[key_id], "encryption")
    associated = aad(version, key_id, org, provider, user, field)
    return AESGCM(key).decrypt(nonce, sealed, associated).decode("utf-8")


def fingerprint(ring_value: str, value: str, org: str, provider: str, user: str, field: str) -> str:
    """Section 7, with the primary key."""
    master = next(iter(read_ring(ring_value).values()))
    message = b"".join(item(s.encode()) for s in (org, provider, user, field, value))
    return hmac.new(subkey(master, "fingerprint"), message, hashlib.sha256).hexdigest()
