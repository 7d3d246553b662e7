"""Master keys from ``RECONCILER_ENCRYPTION_KEYS`` and the subkeys derived from them.

Each master key is used only as HKDF input; encryption, fingerprints and the audit log each get
their own subkey under a distinct label, so no key is used for two purposes.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reconciler.core.errors import ConfigError

ENV_VAR = "RECONCILER_ENCRYPTION_KEYS"
KEY_BYTES = 32
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")

ENCRYPTION_LABEL = b"reconciler/credential-encryption/v1"
FINGERPRINT_LABEL = b"reconciler/credential-fingerprint/v1"
AUDIT_LABEL = b"reconciler/audit-log/v1"

_WHAT_TO_DO = f"run `reconciler keys generate` and put the printed entry in {ENV_VAR}"


def is_key_id(value: str) -> bool:
    return KEY_ID_PATTERN.fullmatch(value) is not None


def derive(master: bytes, label: bytes) -> bytes:
    """HKDF-SHA256, no salt (RFC 5869: a string of zeros), info = label, 32 bytes out."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label).derive(master)


class KeyMaterial:
    """One key id and its three subkeys. Never shows its bytes: not in repr, str or pickles."""

    __slots__ = ("_audit", "_fingerprint", "aead", "key_id")

    def __init__(self, key_id: str, master: bytes) -> None:
        self.key_id = key_id
        self.aead = AESGCM(derive(master, ENCRYPTION_LABEL))
        self._fingerprint = derive(master, FINGERPRINT_LABEL)
        self._audit = derive(master, AUDIT_LABEL)

    @property
    def fingerprint_key(self) -> bytes:
        return self._fingerprint

    @property
    def audit_key(self) -> bytes:
        return self._audit

    def __repr__(self) -> str:
        return f"KeyMaterial(key_id={self.key_id!r}, bytes=(sensitive))"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("key material cannot be pickled")


def parse_entries(value: str | None) -> list[KeyMaterial]:
    """Parse ``KEY_ID:BASE64,...`` into key material, refusing anything doubtful.

    Errors name the entry's position and, once it is known to be well formed, its key id;
    never the text after the colon, which may be (part of) a key.
    """
    if value is None or not value.strip():
        raise ConfigError(f"{ENV_VAR} is not set or empty; {_WHAT_TO_DO}.")
    keys: list[KeyMaterial] = []
    seen: set[str] = set()
    for position, entry in enumerate(value.split(","), start=1):
        key = _parse_entry(position, entry.strip())
        if key.key_id in seen:
            raise ConfigError(
                f"{ENV_VAR}: key id {key.key_id!r} appears more than once; "
                "each key id must be unique."
            )
        seen.add(key.key_id)
        keys.append(key)
    return keys


def _parse_entry(position: int, entry: str) -> KeyMaterial:
    where = f"{ENV_VAR}: entry {position}"
    if not entry:
        raise ConfigError(f"{where} is empty; remove the extra comma.")
    key_id, colon, encoded = entry.partition(":")
    if not colon:
        raise ConfigError(f"{where} has no key id; write it as KEY_ID:BASE64 or {_WHAT_TO_DO}.")
    if not is_key_id(key_id):
        raise ConfigError(
            f"{where} has an invalid key id; a key id is 1 to 64 of A-Z a-z 0-9 _ . -"
        )
    master = _decode_key(encoded.strip())
    if master is None:
        raise ConfigError(
            f"{where} (key id {key_id!r}) is not standard base64 with padding; {_WHAT_TO_DO}."
        )
    if len(master) != KEY_BYTES:
        raise ConfigError(
            f"{where} (key id {key_id!r}) decodes to {len(master)} bytes, "
            f"not {KEY_BYTES}; {_WHAT_TO_DO}."
        )
    return KeyMaterial(key_id, master)


def _decode_key(encoded: str) -> bytes | None:
    """Standard base64 with its ``=`` padding, in canonical form; None if it is not."""
    try:
        raw = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != encoded:
        return None
    return raw


def generate_entry(key_id: str | None = None) -> str:
    """A new ``KEY_ID:BASE64`` entry with 32 random bytes, e.g. ``k20261127-3f9a:...``.

    The default id carries the UTC date so operators can tell keys apart in rotation.
    """
    if key_id is None:
        key_id = f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(2)}"
    if not is_key_id(key_id):
        raise ConfigError("a key id is 1 to 64 of A-Z a-z 0-9 _ . -")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode('ascii')}"
