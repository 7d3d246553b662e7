"""The key ring: encrypt under the first key, decrypt by the key id the envelope names."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag

from reconciler.core.errors import CryptoError
from reconciler.crypto import envelope
from reconciler.crypto.address import CredentialAddress, length_prefixed
from reconciler.crypto.keys import ENV_VAR, KeyMaterial, parse_entries


class KeyRing:
    """Keys from ``RECONCILER_ENCRYPTION_KEYS``: the first encrypts, every one decrypts.

    Decryption never tries keys in turn: the envelope names its key id, and an id that is not in
    the ring is an error naming it and the credential, so a missing key is noticed, not guessed.
    """

    __slots__ = ("_fingerprint_macs", "_keys", "key_ids", "primary_id")

    def __init__(self, keys: list[KeyMaterial]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self._keys = {key.key_id: key for key in keys}
        # One keyed HMAC per key id, copied for each fingerprint: a plan makes one per secret
        # of the fleet, and copying skips deriving the inner and outer pads every time.
        self._fingerprint_macs = {
            key.key_id: hmac.new(key.fingerprint_key, digestmod=hashlib.sha256) for key in keys
        }
        self.key_ids: tuple[str, ...] = tuple(key.key_id for key in keys)
        self.primary_id: str = self.key_ids[0]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyRing:
        """Read the ring from the environment (``os.environ`` unless given); ConfigError if bad."""
        source = os.environ if environ is None else environ
        return cls.parse(source.get(ENV_VAR, ""))

    @classmethod
    def parse(cls, value: str) -> KeyRing:
        """Parse ``KEY_ID:BASE64[,KEY_ID:BASE64...]``; ConfigError naming the bad entry."""
        return cls(parse_entries(value))

    @property
    def fingerprint_key_id(self) -> str:
        """The key id ``fingerprint`` uses when none is given; store it beside the fingerprint."""
        return self.primary_id

    def encrypt(self, plaintext: str, address: CredentialAddress) -> str:
        """Envelope text for ``plaintext`` under the primary key, with a fresh random nonce."""
        key = self._keys[self.primary_id]
        nonce = os.urandom(envelope.NONCE_BYTES)
        aad = envelope.associated_data(envelope.VERSION, key.key_id, address)
        sealed = key.aead.encrypt(nonce, plaintext.encode("utf-8"), aad)
        return envelope.Envelope(key_id=key.key_id, nonce=nonce, sealed=sealed).to_text()

    def decrypt(self, stored: str, address: CredentialAddress) -> str:
        """The plaintext of ``stored``, which must have been made for exactly this address.

        Any change to the envelope, or a different address, fails authentication: there is
        no fallback and the error carries no plaintext.
        """
        parts = envelope.parse(stored, f"credential {address}")
        key = self._key(parts.key_id, address)
        aad = envelope.associated_data(parts.version, parts.key_id, address)
        try:
            plain = key.aead.decrypt(parts.nonce, parts.sealed, aad)
        except InvalidTag:
            raise CryptoError(
                f"credential {address} failed authentication (key id {parts.key_id!r}): it was "
                "altered, truncated, or belongs to another organization, provider, user or field."
            ) from None
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise CryptoError(f"credential {address} did not decrypt to UTF-8 text.") from None

    def key_id_of(self, stored: str, address: CredentialAddress | None = None) -> str:
        """The key id an envelope names, without decrypting; CryptoError if not an envelope.

        ``address`` only makes the error message name the credential.
        """
        where = "value" if address is None else f"credential {address}"
        return envelope.parse(stored, where).key_id

    def fingerprint(self, value: str, address: CredentialAddress, key_id: str | None = None) -> str:
        """Hex HMAC-SHA256 of the address and value under a fingerprint subkey.

        Uses the primary key unless ``key_id`` is given, so a fingerprint made before a rotation
        can be recomputed with the key id it was made with and compared like for like.
        """
        key = self._key(key_id or self.primary_id, address)
        mac = self._fingerprint_macs[key.key_id].copy()
        mac.update(length_prefixed(*address.parts(), value.encode("utf-8")))
        return mac.hexdigest()

    def audit_key(self, key_id: str | None = None) -> bytes:
        """The audit-log HMAC subkey of ``key_id`` (default: the primary key)."""
        chosen = key_id or self.primary_id
        if chosen not in self._keys:
            raise CryptoError(f"key id {chosen!r} is not in {ENV_VAR}; add it back to the ring.")
        return self._keys[chosen].audit_key

    def _key(self, key_id: str, address: CredentialAddress) -> KeyMaterial:
        key = self._keys.get(key_id)
        if key is None:
            raise CryptoError(
                f"credential {address} needs key id {key_id!r}, which is not in {ENV_VAR} "
                f"(it has {', '.join(self.key_ids)}); add that key back to the ring."
            )
        return key

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={self.key_ids!r}, primary_id={self.primary_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a key ring cannot be pickled")
