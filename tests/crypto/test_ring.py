"""Encrypt under the first key, decrypt by key id, fingerprints and audit keys per key id."""

from __future__ import annotations

import base64
import time

import pytest

from reconciler.core.errors import CryptoError
from reconciler.crypto import CredentialAddress, KeyRing, generate_entry

ADDRESS = CredentialAddress("acme", "postmark", "ops@acme.example", "api_key")
NEW, OLD = generate_entry("k-new"), generate_entry("k-old")


def test_address_reads_as_a_path() -> None:
    assert str(ADDRESS) == "acme/postmark/ops@acme.example/api_key"
    with pytest.raises(TypeError):
        CredentialAddress("acme", "postmark", None, "api_key")  # type: ignore[arg-type]


@pytest.mark.parametrize("plaintext", ["pm-token", "", "ключ 🔑", "$", "${NOT_EXPANDED}"])
def test_round_trip(plaintext: str) -> None:
    ring = KeyRing.parse(NEW)
    assert ring.decrypt(ring.encrypt(plaintext, ADDRESS), ADDRESS) == plaintext


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old_ring = KeyRing.parse(OLD)
    stored_old = old_ring.encrypt("v", ADDRESS)
    rotated = KeyRing.parse(f"{NEW},{OLD}")
    assert rotated.primary_id == "k-new"
    assert rotated.key_ids == ("k-new", "k-old")
    assert rotated.key_id_of(stored_old) == "k-old"
    assert rotated.decrypt(stored_old, ADDRESS) == "v"
    stored_new = rotated.encrypt(rotated.decrypt(stored_old, ADDRESS), ADDRESS)
    assert rotated.key_id_of(stored_new) == "k-new"
    assert KeyRing.parse(NEW).decrypt(stored_new, ADDRESS) == "v"


def test_envelope_text_is_ascii_and_prefixed() -> None:
    stored = KeyRing.parse(NEW).encrypt("secret-value", ADDRESS)
    assert stored.startswith("rcv1:")
    assert stored.isascii()
    assert "secret-value" not in stored


def test_100000_encryptions_of_one_value_give_100000_distinct_nonces() -> None:
    ring = KeyRing.parse(NEW)
    started = time.perf_counter()
    nonces = set()
    for _ in range(100_000):
        body = ring.encrypt("same value", ADDRESS)[5:]
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        nonces.add(raw[7:19])  # version, length, "k-new", then the 12-byte nonce
    assert len(nonces) == 100_000
    assert time.perf_counter() - started < 10  # generous bound; typically well under 2 s


def test_fingerprint_is_keyed_stable_and_bound_to_address() -> None:
    ring = KeyRing.parse(f"{NEW},{OLD}")
    fingerprint = ring.fingerprint("pm-token", ADDRESS)
    assert len(fingerprint) == 64
    assert int(fingerprint, 16) >= 0
    assert ring.fingerprint("pm-token", ADDRESS) == fingerprint
    assert ring.fingerprint("pm-token2", ADDRESS) != fingerprint
    moved = CredentialAddress("acme", "postmark", "ops@acme.example", "server_token")
    assert ring.fingerprint("pm-token", moved) != fingerprint
    assert ring.fingerprint_key_id == "k-new"
    assert ring.fingerprint("pm-token", ADDRESS, key_id="k-new") == fingerprint
    assert KeyRing.parse(f"{NEW}").fingerprint("pm-token", ADDRESS) == fingerprint
    assert KeyRing.parse(f"{OLD}").fingerprint("pm-token", ADDRESS) != fingerprint


def test_a_fingerprint_made_under_an_old_key_can_be_recomputed_after_rotation() -> None:
    before = KeyRing.parse(OLD).fingerprint("pm-token", ADDRESS)
    after = KeyRing.parse(f"{NEW},{OLD}")
    assert after.fingerprint("pm-token", ADDRESS, key_id="k-old") == before
    assert after.fingerprint("pm-token", ADDRESS) != before


def test_fingerprint_with_an_unknown_key_id_is_an_error() -> None:
    with pytest.raises(CryptoError, match=r"'k-gone'.*not in RECONCILER_ENCRYPTION_KEYS"):
        KeyRing.parse(NEW).fingerprint("pm-token", ADDRESS, key_id="k-gone")


def test_audit_key_is_per_key_id_and_separate_from_other_subkeys() -> None:
    ring = KeyRing.parse(f"{NEW},{OLD}")
    assert ring.audit_key() == ring.audit_key("k-new")
    assert ring.audit_key("k-old") == KeyRing.parse(OLD).audit_key()
    assert ring.audit_key("k-old") != ring.audit_key()
    assert len(ring.audit_key()) == 32
    master = base64.b64decode(NEW.split(":")[1])
    assert ring.audit_key() != master
