"""The key ring refuses anything doubtful at start, and key objects never show their bytes."""

from __future__ import annotations

import base64
import pickle
import re

import pytest

from reconciler.core.errors import ConfigError, CryptoError
from reconciler.crypto import KeyRing, generate_entry
from reconciler.crypto.keys import KeyMaterial, parse_entries

KEY_TEXT = base64.b64encode(bytes(range(100, 132))).decode()
GOOD = f"main:{KEY_TEXT}"


def config_error(value: str | None) -> str:
    """Parsing must fail with ConfigError; return the message after checking it leaks no key."""
    with pytest.raises(ConfigError) as caught:
        KeyRing.from_env({} if value is None else {"RECONCILER_ENCRYPTION_KEYS": value})
    message = str(caught.value)
    assert "RECONCILER_ENCRYPTION_KEYS" in message
    for entry in (value or "").split(","):
        secret_part = entry.partition(":")[2].strip()
        if len(secret_part) >= 8:
            assert secret_part not in message
            assert secret_part[:8] not in message
    return message


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_or_empty_says_what_to_do(value: str | None) -> None:
    assert "reconciler keys generate" in config_error(value)


@pytest.mark.parametrize(
    ("size", "shown"),
    [(31, "31 bytes"), (33, "33 bytes"), (16, "16 bytes"), (64, "64 bytes"), (0, "0 bytes")],
)
def test_wrong_key_length_names_the_key_id(size: int, shown: str) -> None:
    encoded = base64.b64encode(b"\x07" * size).decode()
    message = config_error(f"{GOOD},short-key:{encoded}")
    assert "'short-key'" in message
    assert "entry 2" in message
    assert shown in message
    assert "reconciler keys generate" in message


@pytest.mark.parametrize(
    "encoded",
    [
        KEY_TEXT.rstrip("="),  # padding missing
        KEY_TEXT.replace("+", "-").replace("/", "_") + "x",  # url-safe alphabet / junk
        KEY_TEXT[:-2] + "B=",  # non-canonical: unused bits set
        "not base64 at all!!",
        "ключ" * 11,
    ],
    ids=["unpadded", "junk", "noncanonical", "text", "non-ascii"],
)
def test_bad_base64_names_the_key_id(encoded: str) -> None:
    message = config_error(f"k-1:{encoded}")
    assert "'k-1'" in message
    assert "base64" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (KEY_TEXT, "entry 1 has no key id"),
        (f"{GOOD},", "entry 2 is empty"),
        (f"{GOOD},,{GOOD}", "entry 2 is empty"),
        (f":{KEY_TEXT}", "entry 1 has an invalid key id"),
        (f"my key:{KEY_TEXT}", "entry 1 has an invalid key id"),
        (f"{'k' * 65}:{KEY_TEXT}", "entry 1 has an invalid key id"),
        (f"k1\n:{KEY_TEXT}", "entry 1 has an invalid key id"),
        (f"{KEY_TEXT}:k1", "entry 1 has an invalid key id"),
        (f"{GOOD},main:{generate_entry().split(':')[1]}", "'main' appears more than once"),
    ],
    # stable ids (one value holds a generated key), so every pytest worker collects the same
    ids=[
        "no-id",
        "trailing-comma",
        "empty-middle",
        "empty-id",
        "space-in-id",
        "long-id",
        "newline-in-id",
        "key-and-id-swapped",
        "repeated-id",
    ],
)
def test_malformed_entries_are_refused(value: str, expected: str) -> None:
    assert expected in config_error(value)


def test_a_key_put_where_the_id_goes_is_not_echoed() -> None:
    message = config_error(f"{KEY_TEXT}:k1")
    assert KEY_TEXT not in message
    assert KEY_TEXT[:8] not in message


def test_whitespace_around_entries_is_ignored_and_order_kept() -> None:
    other = generate_entry("b.2")
    ring = KeyRing.parse(f"  {GOOD} ,\t{other} ")
    assert ring.primary_id == "main"
    assert ring.key_ids == ("main", "b.2")


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_ENCRYPTION_KEYS", GOOD)
    assert KeyRing.from_env().key_ids == ("main",)
    monkeypatch.delenv("RECONCILER_ENCRYPTION_KEYS")
    with pytest.raises(ConfigError):
        KeyRing.from_env()


def key_forms(raw: bytes) -> list[str]:
    return [
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        repr(raw),
    ]


def test_repr_and_str_never_show_key_bytes() -> None:
    master = bytes(range(100, 132))
    ring = KeyRing.parse(GOOD)
    material = parse_entries(GOOD)[0]
    shown = " ".join(
        [
            repr(ring),
            str(ring),
            f"{ring}",
            repr(material),
            str(material),
            f"{material!r}",
        ]
    )
    subkeys = [ring.audit_key(), material.fingerprint_key]
    for raw in [master, *subkeys]:
        for form in key_forms(raw):
            assert form not in shown
    assert repr(ring) == "KeyRing(key_ids=('main',), primary_id='main')"
    assert repr(material) == "KeyMaterial(key_id='main', bytes=(sensitive))"
    assert not hasattr(ring, "__dict__")
    assert not hasattr(material, "__dict__")


def test_key_objects_cannot_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(KeyRing.parse(GOOD))
    with pytest.raises(TypeError):
        pickle.dumps(parse_entries(GOOD)[0])


def test_errors_about_key_ids_never_show_bytes() -> None:
    ring = KeyRing.parse(GOOD)
    with pytest.raises(CryptoError) as caught:
        ring.audit_key("gone")
    assert "'gone'" in str(caught.value)
    for form in key_forms(bytes(range(100, 132))):
        assert form not in str(caught.value)


def test_subkeys_are_separate_and_differ_per_key() -> None:
    first, second = parse_entries(f"{GOOD},{generate_entry('x')}")
    assert (
        len({first.fingerprint_key, first.audit_key, second.fingerprint_key, second.audit_key}) == 4
    )
    assert first.fingerprint_key != bytes(range(100, 132))
    assert isinstance(first, KeyMaterial)


def test_generate_entry_makes_a_valid_fresh_entry() -> None:
    entry = generate_entry()
    key_id, _, encoded = entry.partition(":")
    assert re.fullmatch(r"k\d{8}-[0-9a-f]{4}", key_id)
    assert len(base64.b64decode(encoded, validate=True)) == 32
    assert KeyRing.parse(entry).primary_id == key_id
    assert generate_entry("prod-2026").startswith("prod-2026:")
    assert len({generate_entry("same").split(":")[1] for _ in range(50)}) == 50


@pytest.mark.parametrize("key_id", ["", "has space", "x" * 65, "a:b", "a,b"])
def test_generate_entry_refuses_bad_ids(key_id: str) -> None:
    with pytest.raises(ConfigError):
        generate_entry(key_id)
