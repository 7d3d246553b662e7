"""The format document is the contract: a second implementation written from it alone agrees."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from reconciler.crypto import CredentialAddress, KeyRing, generate_entry
from reconciler.crypto.envelope import Envelope, associated_data
from reconciler.crypto.keys import AUDIT_LABEL, ENCRYPTION_LABEL, FINGERPRINT_LABEL, derive

from . import doc_decryptor

DOC = Path(__file__).resolve().parents[2] / "docs" / "credential-format.md"


def documented_vector() -> dict[str, str]:
    """The ``text`` block of section 10, as a dict."""
    block = re.search(r"## 10\. Test vector.*?```text\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None, "docs/credential-format.md has no test vector block"
    pairs = (line.split(": ", 1) for line in block.group(1).splitlines() if line)
    vector = dict(pairs)
    assert len(vector) == 16
    return vector


@pytest.fixture
def vector() -> dict[str, str]:
    return documented_vector()


def address_of(vector: dict[str, str]) -> CredentialAddress:
    return CredentialAddress(
        vector["organization"], vector["provider"], vector["user"], vector["field"]
    )


def test_both_implementations_decrypt_the_documented_vector(vector: dict[str, str]) -> None:
    address = address_of(vector)
    ring = KeyRing.parse(vector["entry"])
    assert ring.decrypt(vector["envelope_text"], address) == vector["plaintext"]
    plain = doc_decryptor.decrypt(vector["entry"], vector["envelope_text"], *address_parts(vector))
    assert plain == vector["plaintext"]


def test_package_reproduces_every_documented_line(vector: dict[str, str]) -> None:
    master = base64.b64decode(vector["entry"].split(":", 1)[1])
    assert derive(master, ENCRYPTION_LABEL).hex() == vector["encryption_subkey"]
    assert derive(master, FINGERPRINT_LABEL).hex() == vector["fingerprint_subkey"]
    assert derive(master, AUDIT_LABEL).hex() == vector["audit_subkey"]
    ring = KeyRing.parse(vector["entry"])
    address = address_of(vector)
    assert associated_data(1, "k1", address).hex() == vector["aad"]
    assert ring.audit_key().hex() == vector["audit_subkey"]
    assert ring.fingerprint(vector["plaintext"], address) == vector["fingerprint"]
    envelope = Envelope(
        "k1", bytes.fromhex(vector["nonce"]), bytes.fromhex(vector["ciphertext_and_tag"])
    )
    assert envelope.to_bytes().hex() == vector["envelope_bytes"]
    assert envelope.to_text() == vector["envelope_text"]


def test_doc_implementation_reproduces_every_documented_line(vector: dict[str, str]) -> None:
    master = doc_decryptor.read_ring(vector["entry"])["k1"]
    assert doc_decryptor.subkey(master, "encryption").hex() == vector["encryption_subkey"]
    assert doc_decryptor.subkey(master, "fingerprint").hex() == vector["fingerprint_subkey"]
    assert doc_decryptor.subkey(master, "audit").hex() == vector["audit_subkey"]
    assert doc_decryptor.aad(1, "k1", *address_parts(vector)).hex() == vector["aad"]
    raw = doc_decryptor.envelope_bytes(vector["envelope_text"])
    assert raw.hex() == vector["envelope_bytes"]
    _, key_id, nonce, sealed = doc_decryptor.split(raw)
    assert (key_id, nonce.hex(), sealed.hex()) == (
        "k1",
        vector["nonce"],
        vector["ciphertext_and_tag"],
    )
    fingerprint = doc_decryptor.fingerprint(
        vector["entry"], vector["plaintext"], *address_parts(vector)
    )
    assert fingerprint == vector["fingerprint"]


@pytest.mark.parametrize(
    "plaintext", ["sk_live_51HqLyjWDarjtT1zdp7dc", "", "ключ-🔑", "x" * 5000, "a,b:c${X}"]
)
def test_envelopes_made_by_the_package_decrypt_with_the_doc_implementation(
    plaintext: str,
) -> None:
    entries = f"{generate_entry('new')},{generate_entry('old-1.key')}"
    address = CredentialAddress("globex", "google_maps", "it@globex.example", "api_key")
    stored = KeyRing.parse(entries).encrypt(plaintext, address)
    assert (
        doc_decryptor.decrypt(
            entries, stored, "globex", "google_maps", "it@globex.example", "api_key"
        )
        == plaintext
    )
    assert doc_decryptor.fingerprint(
        entries, plaintext, "globex", "google_maps", "it@globex.example", "api_key"
    ) == KeyRing.parse(entries).fingerprint(plaintext, address)


def test_doc_implementation_also_refuses_another_address() -> None:
    entry = generate_entry("k1")
    stored = KeyRing.parse(entry).encrypt("v", CredentialAddress("a", "stripe", "u", "api_key"))
    with pytest.raises(InvalidTag):
        doc_decryptor.decrypt(entry, stored, "b", "stripe", "u", "api_key")


def address_parts(vector: dict[str, str]) -> tuple[str, str, str, str]:
    return vector["organization"], vector["provider"], vector["user"], vector["field"]
