"""Credential encryption: the key ring, the envelope format and keyed fingerprints.

    ring = KeyRing.from_env()                      # RECONCILER_ENCRYPTION_KEYS
    address = CredentialAddress("acme", "stripe", "ops@acme.example", "api_key")
    stored = ring.encrypt(secret.reveal(), address)        # "rcv1:..." under ring.primary_id
    plain = ring.decrypt(stored, address)                  # key picked by the id in `stored`
    fp = ring.fingerprint(secret.reveal(), address)        # made with ring.fingerprint_key_id

The byte layout is documented in ``docs/credential-format.md``; that document is the contract,
this package one implementation of it. Errors are ``ConfigError`` (bad key ring) and
``CryptoError`` (a value that cannot be used); neither ever carries key bytes or plaintext.
"""

from reconciler.crypto.address import CredentialAddress
from reconciler.crypto.keys import ENV_VAR, generate_entry
from reconciler.crypto.ring import KeyRing

__all__ = ["ENV_VAR", "CredentialAddress", "KeyRing", "generate_entry"]
