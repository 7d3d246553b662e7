"""Tamper evidence: anything but the untouched envelope at its own address fails, plainly."""

from __future__ import annotations

import base64

import pytest

from reconciler.core.errors import CryptoError
from reconciler.crypto import CredentialAddress, KeyRing, generate_entry

SECRET = "sk_live_canary_Q7x9ZpL2"
ADDRESS = CredentialAddress("acme", "stripe", "ops@acme.example", "api_key")
RING = KeyRing.parse(f"{generate_entry('new')},{generate_entry('old')}")


def raw_of(text: str) -> bytes:
    body = text.removeprefix("rcv1:")
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def text_of(raw: bytes) -> str:
    return "rcv1:" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def refused(stored: object, address: CredentialAddress = ADDRESS) -> str:
    """Decrypt must fail; return the message after checking it leaks nothing."""
    with pytest.raises(CryptoError) as caught:
        RING.decrypt(stored, address)  # type: ignore[arg-type]
    message = str(caught.value)
    assert SECRET not in message
    assert str(address) in message
    if isinstance(stored, str) and len(stored) > 8:
        assert stored not in message
    assert caught.value.__cause__ is None
    return message


@pytest.fixture(scope="module")
def stored() -> str:
    return RING.encrypt(SECRET, ADDRESS)


@pytest.mark.parametrize(
    "moved_to",
    [
        CredentialAddress("globex", "stripe", "ops@acme.example", "api_key"),
        CredentialAddress("acme", "postmark", "ops@acme.example", "api_key"),
        CredentialAddress("acme", "stripe", "eve@acme.example", "api_key"),
        CredentialAddress("acme", "stripe", "ops@acme.example", "account_id"),
        # Same concatenation, different split: length prefixes keep these apart.
        CredentialAddress("acmes", "tripe", "ops@acme.example", "api_key"),
    ],
    ids=["organization", "provider", "user", "field", "boundary"],
)
def test_a_ciphertext_moved_to_another_address_fails(stored: str, moved_to: CredentialAddress):
    assert "failed authentication" in refused(stored, moved_to)


def test_a_ciphertext_swapped_between_two_rows_fails() -> None:
    other = CredentialAddress("acme", "stripe", "ops@acme.example", "webhook_secret")
    first, second = RING.encrypt(SECRET, ADDRESS), RING.encrypt(SECRET, other)
    refused(second, ADDRESS)
    refused(first, other)


def test_every_flipped_bit_of_every_byte_fails(stored: str) -> None:
    raw = raw_of(stored)
    for index in range(len(raw)):
        for bit in range(8):
            changed = bytearray(raw)
            changed[index] ^= 1 << bit
            refused(text_of(bytes(changed)))


def test_every_changed_character_of_the_text_fails(stored: str) -> None:
    for index in range(len(stored)):
        for replacement in "A_-0=+/ r":
            if stored[index] != replacement:
                refused(stored[:index] + replacement + stored[index + 1 :])


def test_every_truncation_fails(stored: str) -> None:
    raw = raw_of(stored)
    for length in range(len(raw)):
        refused(text_of(raw[:length]))
    for length in range(len(stored)):
        refused(stored[:length])


def test_appended_bytes_fail(stored: str) -> None:
    refused(text_of(raw_of(stored) + b"\x00"))
    refused(stored + "A")


def test_header_key_id_swapped_to_another_key_in_the_ring_fails(stored: str) -> None:
    raw = raw_of(stored)
    assert raw[2:5] == b"new"
    refused(text_of(raw[:2] + b"old" + raw[5:]))


@pytest.mark.parametrize(
    "value",
    [
        SECRET,
        "",
        "rcv1:",
        "rcv2:" + "A" * 60,
        "RCV1:" + "A" * 60,
        " rcv1:" + "A" * 60,
        "rcv1:" + "A" * 60 + "==",
        "rcv1:" + "A" * 61,
        "rcv1:" + "A" * 60 + "\n",
        base64.b64encode(SECRET.encode()).decode(),
        "rcv1:" + "A" * (1 << 20),
        None,
        b"rcv1:AAAA",
    ],
    ids=[
        "plaintext",
        "empty",
        "prefix-only",
        "v2",
        "upper",
        "space",
        "padded",
        "len1mod4",
        "newline",
        "base64-of-secret",
        "huge",
        "none",
        "bytes",
    ],
)
def test_a_value_that_is_not_an_envelope_is_refused_not_used(value: object) -> None:
    refused(value)


def test_non_envelope_message_is_plain() -> None:
    message = refused(SECRET)
    assert message == (
        f"credential {ADDRESS} is not an encrypted envelope (expected text starting with "
        "'rcv1:'); it is refused and not used as plaintext."
    )


def test_an_unknown_version_byte_fails(stored: str) -> None:
    raw = raw_of(stored)
    assert "version" in refused(text_of(b"\x02" + raw[1:]))


def test_an_unknown_key_id_names_the_id_and_the_address() -> None:
    stored = KeyRing.parse(generate_entry("retired-2025")).encrypt(SECRET, ADDRESS)
    message = refused(stored)
    assert "'retired-2025'" in message
    assert "acme/stripe/ops@acme.example/api_key" in message
    assert "new, old" in message


def test_no_trial_decryption_even_when_a_ring_key_would_work() -> None:
    """A renamed key id is unknown even though the same bytes sit in the ring under another id."""
    entry = generate_entry("a")
    stored = KeyRing.parse(entry).encrypt(SECRET, ADDRESS)
    renamed = KeyRing.parse("b:" + entry.split(":", 1)[1])
    with pytest.raises(CryptoError, match="'a'"):
        renamed.decrypt(stored, ADDRESS)


def test_key_id_of_refuses_non_envelopes_without_echoing_them() -> None:
    with pytest.raises(CryptoError) as caught:
        RING.key_id_of(SECRET)
    assert SECRET not in str(caught.value)
    with pytest.raises(CryptoError, match="acme/stripe"):
        RING.key_id_of("nope", ADDRESS)
