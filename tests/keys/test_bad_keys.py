"""A bad RECONCILER_ENCRYPTION_KEYS is an error at start, naming the key id, before the database
is read or written, and never showing the key text."""

from __future__ import annotations

import base64

import pytest

from reconciler.crypto import generate_entry
from tests.conftest import Env

SHORT = base64.b64encode(b"s" * 16).decode()
LONG = base64.b64encode(b"l" * 33).decode()
UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:1/nowhere"  # any read would fail differently

BAD = {
    "short": (f"kshort:{SHORT}", ["'kshort'", "16 bytes", "not 32"]),
    "long": (f"klong:{LONG}", ["'klong'", "33 bytes"]),
    "not base64": ("kbad:%%%not-base64%%%", ["'kbad'", "base64"]),
    "second entry": (f"{generate_entry('kgood')},ksecond:{SHORT}", ["'ksecond'", "entry 2"]),
    "duplicate id": (f"{generate_entry('kdup')},{generate_entry('kdup')}", ["'kdup'"]),
    "no id": (SHORT, ["entry 1"]),
    "empty": ("", ["RECONCILER_ENCRYPTION_KEYS is not set"]),
}
COMMANDS = [
    ("plan",),
    ("apply",),
    ("health",),
    ("keys", "status"),
    ("keys", "rotate"),
    ("audit", "verify"),
    ("audit", "head"),
]


@pytest.mark.databases("sqlite")  # none is ever reached: the same on every database
@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_bad_key_entry_is_refused_before_the_database(
    env: Env, case: str, command: tuple[str, ...]
) -> None:
    value, expected = BAD[case]
    r = env.run(*command, RECONCILER_ENCRYPTION_KEYS=value, RECONCILER_DATABASE_URL=UNREACHABLE_DB)
    assert r.exit_code == 1, r.output
    for part in expected:
        assert part in r.output, r.output
    assert "RECONCILER_ENCRYPTION_KEYS" in r.output
    assert "Traceback" not in r.output and "unexpected error" not in r.output
    for secret in (SHORT, LONG, SHORT[:12]):
        assert secret not in r.output


@pytest.mark.parametrize("command", [("plan",), ("apply",), ("health",)], ids=" ".join)
def test_bad_key_writes_nothing(env: Env, command: tuple[str, ...]) -> None:
    bad = f"k1:{SHORT}"
    url = env.vars["RECONCILER_DATABASE_URL"]
    if command == ("health",):
        assert env.run("apply").exit_code == 0
        with env.session() as s:
            from reconciler.db.schema import StateMeta

            meta = s.get(StateMeta, 1)
            assert meta is not None
            serial = meta.serial
    r = env.run(*command, RECONCILER_ENCRYPTION_KEYS=bad)
    assert r.exit_code == 1 and "'k1'" in r.output
    if command == ("health",):
        with env.session() as s:
            meta = s.get(StateMeta, 1)
            assert meta is not None and meta.serial == serial
    elif url.startswith("sqlite"):
        assert not (env.cwd / url.split("///", 1)[1]).exists()
    else:
        with env.session() as s:
            from sqlalchemy import inspect

            assert inspect(s.get_bind()).get_table_names() == []


def test_apply_saved_plan_with_a_bad_key_is_refused(env: Env, tmp_path: object) -> None:
    plan_file = env.cwd / "p.json"
    assert env.run("plan", "--out", str(plan_file)).exit_code == 0
    r = env.run("apply", "--plan", str(plan_file), RECONCILER_ENCRYPTION_KEYS=f"k1:{SHORT}")
    assert r.exit_code == 1 and "'k1'" in r.output and "16 bytes" in r.output
    url = env.vars["RECONCILER_DATABASE_URL"]
    if url.startswith("sqlite"):
        assert not (env.cwd / url.split("///", 1)[1]).exists()
