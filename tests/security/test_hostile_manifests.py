"""Hostile manifests, end to end: `validate` and `apply` refuse each with a plain message, fast,
without running anything, and without writing anything (the SQLite file is not even created)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.schema import Connection, Credential, Instance
from tests.conftest import Env

HEADER = """apiVersion: reconciler/v1
kind: Organization
metadata:
  name: evil
spec:
  members:
    - user: ops@evil.example
      permissions: [settings.edit]
"""
CONNECTION = """  connections:
    - provider: stripe
      owner: ops@evil.example
      credentials:
        api_key: {value}
"""
LITERAL = "sk_live_LITERALsecret9f8e7d"


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def hostile(pwned: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (file text, words the message must contain)."""
    return {
        "billion laughs": (billion_laughs(), ["anchor", "not allowed"]),
        "python tag": (
            f'{HEADER}  connections: !!python/object/apply:os.system ["touch {pwned}"]\n',
            ["tag", "not allowed"],
        ),
        "tag on a value": (
            HEADER + CONNECTION.format(value='!!binary "c2VjcmV0"'),
            ["tag !!binary", "not allowed"],
        ),
        "alias": (
            HEADER.replace("  members:", "  members: &m") + "  other: *m\n",
            ["alias", "not allowed"],
        ),
        "deep nesting": (
            HEADER + "  connections: " + "[" * 5000 + "]" * 5000 + "\n",
            ["nested deeper than 32"],
        ),
        "deep mapping": (
            HEADER
            + "  allowEmpty:\n"
            + "".join("    " + "  " * i + f"k{i}:\n" for i in range(40))
            + "    "
            + "  " * 40
            + "x: 1\n",
            ["nested deeper than 32"],
        ),
        "oversized": (HEADER + "#" + "x" * (1024 * 1024) + "\n", ["over the 1048576-byte limit"]),
        "duplicate key deep": (
            HEADER + CONNECTION.format(value="${EVIL_KEY}") + "        api_key: ${EVIL_KEY}\n",
            ["duplicate key 'api_key'"],
        ),
        "master keys": (
            HEADER + CONNECTION.format(value="${RECONCILER_ENCRYPTION_KEYS}"),
            ["RECONCILER_ENCRYPTION_KEYS", "never sent to a provider"],
        ),
        "database url": (
            HEADER + CONNECTION.format(value="${RECONCILER_DATABASE_URL}"),
            ["RECONCILER_DATABASE_URL"],
        ),
        "literal secret": (
            HEADER + CONNECTION.format(value=LITERAL),
            ["literal value", "plaintext secrets do not go into git"],
        ),
        "partial reference": (
            HEADER + CONNECTION.format(value=f'"{LITERAL}${{EVIL_KEY}}"'),
            ["not a whole ${VAR} reference"],
        ),
        "lower-case variable": (
            HEADER + CONNECTION.format(value="${evil_key}"),
            ["invalid variable name"],
        ),
        "nested reference": (
            HEADER + CONNECTION.format(value="${EVIL_${X}}"),
            ["not a whole ${VAR} reference"],
        ),
    }


CASES = sorted(hostile(Path("/x")))


def nothing_written(env: Env) -> None:
    url = env.vars["RECONCILER_DATABASE_URL"]
    if url.startswith("sqlite"):
        assert not Path(url.split("///", 1)[1]).exists(), "the SQLite file was created"
        return
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["validate", "apply"])
def test_hostile_manifest_is_refused(env: Env, case: str, command: str) -> None:
    pwned = env.cwd / "PWNED"
    content, words = hostile(pwned)[case]
    folder = env.cwd / "hostile"
    folder.mkdir()
    (folder / "evil.yaml").write_text(content)
    started = time.monotonic()
    r = env.run(command, "hostile", EVIL_KEY="sk_test_evil-value-123")
    elapsed = time.monotonic() - started
    assert r.exit_code == 1, r.output
    assert elapsed < 2.0, f"took {elapsed:.2f} s"
    assert "hostile/evil.yaml" in r.output
    for w in words:
        assert w in r.output, r.output
    assert "nothing was written" in r.output
    assert "Traceback" not in r.output and "unexpected error" not in r.output
    assert len(r.output) < 4000
    assert LITERAL not in r.output and LITERAL[8:20] not in r.output
    assert env.vars["RECONCILER_ENCRYPTION_KEYS"].split(":", 1)[1] not in r.output
    assert "lol" not in r.output
    assert not pwned.exists(), "a YAML tag ran a command"
    nothing_written(env)


def test_hostile_file_among_good_ones_stops_the_whole_apply(env: Env) -> None:
    (env.cwd / "manifests" / "evil.yaml").write_text(billion_laughs())
    r = env.run("apply")
    assert r.exit_code == 1 and "evil.yaml" in r.output
    nothing_written(env)


@pytest.mark.parametrize(
    "value",
    ["sk_test_${GLOBEX_STRIPE_SECRET_KEY}", "sk_test_$HOME$$x", "sk_test_${RECONCILER_ACTOR}"],
)
def test_secret_values_are_used_as_they_are(env: Env, value: str) -> None:
    """Interpolation runs once: `$` and `${...}` inside a secret's value stay as written."""
    (env.cwd / "manifests" / "acme.yaml").unlink()
    env.vars["GLOBEX_STRIPE_SECRET_KEY"] = value
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    assert value not in r.output
    ring = KeyRing.from_env(env.vars)
    with env.session() as s:
        cred, user = s.execute(
            Credential.__table__.select()
            .with_only_columns(Credential.ciphertext, Connection.user_email)
            .join_from(Credential, Connection, Credential.connection_id == Connection.id)
            .join_from(Connection, Instance, Connection.instance_id == Instance.id)
            .where(Instance.organization == "globex", Instance.provider == "stripe")
        ).one()
    plain = ring.decrypt(cred, CredentialAddress("globex", "stripe", user, "api_key"))
    assert plain == value
