"""The audit chain as an attacker with SQL access meets it: every edit is found and named."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, select, text

from reconciler.audit import AuditWriter
from reconciler.crypto import KeyRing
from reconciler.db.schema import AuditEntry, StateMeta
from tests.conftest import Env

HEAD = re.compile(r"^[0-9a-f]{64}$")


def tamper(env: Env, *statements: str) -> None:
    """Run SQL as someone who owns the table (PostgreSQL triggers are disabled first)."""
    with env.session() as s, s.begin():
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("ALTER TABLE integration_audit_log DISABLE TRIGGER USER"))
        for sql in statements:
            s.execute(text(sql))


def entries(env: Env) -> list[AuditEntry]:
    with env.session() as s:
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        s.expunge_all()
        return rows


def last_seq(env: Env) -> int:
    return entries(env)[-1].seq


@pytest.fixture
def applied(env: Env) -> Env:
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    assert len(entries(env)) >= 10
    return env


def verify_fails(env: Env, *args: str) -> str:
    r = env.run("audit", "verify", *args)
    assert r.exit_code == 1, r.output
    assert "Audit log verification FAILED" in r.output
    return r.output


def test_verify_passes_after_apply_and_health(applied: Env) -> None:
    assert applied.run("health").exit_code == 0
    r = applied.run("audit", "verify")
    assert r.exit_code == 0, r.output
    assert f"Audit log verified: {len(entries(applied))} entries" in r.stdout


def serial(env: Env) -> int:
    with env.session() as s:
        meta = s.get(StateMeta, 1)
        assert meta is not None
        return meta.serial


def test_entries_chain_where_the_database_cannot_return_from_an_update(applied: Env) -> None:
    """SQLite before 3.35 has no UPDATE ... RETURNING: the state row is read after the bump."""
    before, count = serial(applied), len(entries(applied))
    with applied.session() as s:
        s.get_bind().dialect.update_returning = False
        with s.begin():
            w = AuditWriter(s, KeyRing.from_env(applied.vars), "tester", "test")
            w.record("acme", "test.one", "acme/stripe", {"n": 1})
            w.record("acme", "test.two", "acme/stripe", {"n": 2})
    r = applied.run("audit", "verify")
    assert r.exit_code == 0, r.output
    assert f"Audit log verified: {count + 2} entries" in r.stdout
    assert serial(applied) == before + 1


def test_modified_row_is_named(applied: Env) -> None:
    tamper(applied, "UPDATE integration_audit_log SET actor = 'someone-else' WHERE seq = 3")
    out = verify_fails(applied)
    assert "audit entry #3" in out and "does not verify" in out


def test_modified_details_are_named(applied: Env) -> None:
    tamper(applied, "UPDATE integration_audit_log SET details = '{\"x\": 1}' WHERE seq = 5")
    assert "audit entry #5" in verify_fails(applied)


def test_malformed_row_is_named_not_a_crash(applied: Env) -> None:
    tamper(applied, "UPDATE integration_audit_log SET details = 'not json' WHERE seq = 2")
    out = verify_fails(applied)
    assert "audit entry #2" in out and "malformed" in out


def test_deleted_row_is_named(applied: Env) -> None:
    tamper(applied, "DELETE FROM integration_audit_log WHERE seq = 4")
    out = verify_fails(applied)
    assert "audit entry #5" in out and "out of sequence: expected #4" in out


def test_deleted_row_with_renumbering_is_named(applied: Env) -> None:
    tamper(
        applied,
        "DELETE FROM integration_audit_log WHERE seq = 4",
        "UPDATE integration_audit_log SET seq = seq + 1000 WHERE seq > 4",
        "UPDATE integration_audit_log SET seq = seq - 1001 WHERE seq > 1000",
    )
    out = verify_fails(applied)
    assert "audit entry #4" in out and "does not verify" in out


def test_reordered_rows_are_named(applied: Env) -> None:
    ids = [e.id for e in entries(applied)]
    a, b = ids[1], ids[2]  # entries #2 and #3 swap places
    tamper(
        applied,
        f"UPDATE integration_audit_log SET id = -1 WHERE id = {a}",
        f"UPDATE integration_audit_log SET id = {a} WHERE id = {b}",
        f"UPDATE integration_audit_log SET id = {b} WHERE id = -1",
    )
    out = verify_fails(applied)
    assert "audit entry #3" in out and "out of sequence" in out


def test_reordered_rows_with_swapped_sequence_numbers_are_named(applied: Env) -> None:
    tamper(
        applied,
        "UPDATE integration_audit_log SET seq = -1 WHERE seq = 2",
        "UPDATE integration_audit_log SET seq = 2 WHERE seq = 3",
        "UPDATE integration_audit_log SET seq = 3 WHERE seq = -1",
    )
    ids = [e.id for e in entries(applied)]
    a, b = ids[1], ids[2]
    tamper(
        applied,
        f"UPDATE integration_audit_log SET id = -1 WHERE id = {a}",
        f"UPDATE integration_audit_log SET id = {a} WHERE id = {b}",
        f"UPDATE integration_audit_log SET id = {b} WHERE id = -1",
    )
    out = verify_fails(applied)
    assert "audit entry #2" in out and "does not verify" in out


def _forged_insert(seq: int, row_id: int, hmac: str) -> str:
    return (
        "INSERT INTO integration_audit_log (id, seq, organization, actor, action, target, "
        "method, details, git_commit, created_at, key_id, hmac) VALUES "
        f"({row_id}, {seq}, 'acme', 'mallory', 'connection.delete', 'acme/stripe', 'apply', "
        f"'{{}}', NULL, '2030-01-01 00:00:00', 'k1', '{hmac}')"
    )


def test_row_inserted_in_the_middle_is_named(applied: Env) -> None:
    rows = entries(applied)
    third = rows[2]
    tamper(
        applied,
        f"UPDATE integration_audit_log SET id = id + 100000, seq = seq + 100000 "
        f"WHERE seq >= {third.seq}",
        "UPDATE integration_audit_log SET id = id - 99999, seq = seq - 99999 WHERE seq > 100000",
        _forged_insert(third.seq, third.id, third.hmac),  # even a copied HMAC does not fit
        "UPDATE reconciler_state SET audit_seq = audit_seq + 1 WHERE id = 1",
    )
    out = verify_fails(applied)
    assert f"audit entry #{third.seq}" in out and "mallory" not in out
    assert "does not verify" in out


def test_row_appended_at_the_end_is_named(applied: Env) -> None:
    rows = entries(applied)
    n = rows[-1].seq + 1
    tamper(
        applied,
        _forged_insert(n, rows[-1].id + 1, "ab" * 32),
        f"UPDATE reconciler_state SET audit_seq = {n}, audit_head = '{'ab' * 32}' WHERE id = 1",
    )
    out = verify_fails(applied)
    assert f"audit entry #{n}" in out


def test_row_signed_with_an_unknown_key_is_named(applied: Env) -> None:
    rows = entries(applied)
    n = rows[-1].seq + 1
    tamper(
        applied,
        _forged_insert(n, rows[-1].id + 1, "ab" * 32).replace("'k1'", "'k9'"),
        f"UPDATE reconciler_state SET audit_seq = {n}, audit_head = '{'ab' * 32}' WHERE id = 1",
    )
    out = verify_fails(applied)
    assert f"audit entry #{n}" in out and "'k9'" in out


def test_truncated_tail_is_caught_by_the_state_then_by_the_expected_head(applied: Env) -> None:
    r = applied.run("audit", "head")
    assert r.exit_code == 0, r.output
    head = r.stdout.strip()
    assert HEAD.match(head)
    assert applied.run("audit", "verify", "--expect-head", head).exit_code == 0
    n = last_seq(applied)
    tamper(applied, f"DELETE FROM integration_audit_log WHERE seq > {n - 2}")
    out = verify_fails(applied)
    assert "deleted from the end" in out
    # the attacker also rewrites the state row: only the head kept outside catches it now
    keep = entries(applied)[-1]
    tamper(
        applied,
        f"UPDATE reconciler_state SET audit_seq = {keep.seq}, audit_head = '{keep.hmac}' "
        "WHERE id = 1",
    )
    r = applied.run("audit", "verify")
    assert r.exit_code == 0, r.output
    out = verify_fails(applied, "--expect-head", head)
    assert "expected head is not in the audit log" in out


def test_deleting_every_row_is_caught(applied: Env) -> None:
    tamper(applied, "DELETE FROM integration_audit_log")
    assert "deleted from the end" in verify_fails(applied)


def test_expect_head_accepts_a_log_that_grew(env: Env) -> None:
    assert env.run("apply", "manifests/globex.yaml").exit_code == 0
    head = env.run("audit", "head").stdout.strip()
    assert HEAD.match(head)
    assert env.run("apply").exit_code == 0
    r = env.run("audit", "verify", "--expect-head", head)
    assert r.exit_code == 0, r.output
    assert "grown past the expected head" in r.stdout


def test_head_refuses_a_log_that_does_not_verify(applied: Env) -> None:
    tamper(applied, "UPDATE integration_audit_log SET target = 'x' WHERE seq = 1")
    r = applied.run("audit", "head")
    assert r.exit_code == 1
    assert "audit entry #1" in r.output and not HEAD.search(r.stdout.strip() or "-")


def test_removing_the_key_without_rotation_is_named(applied: Env) -> None:
    from reconciler.crypto import generate_entry

    r = applied.run("audit", "verify", RECONCILER_ENCRYPTION_KEYS=generate_entry("k2"))
    assert r.exit_code == 1
    assert "audit entry #1" in r.output and "'k1'" in r.output


# -- nothing in the tool updates or deletes an audit row ------------------------------------


@pytest.fixture
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)


def test_no_command_updates_or_deletes_audit_rows(env: Env, statements: list[str]) -> None:
    from reconciler.crypto import generate_entry

    assert env.run("apply").exit_code == 0
    assert env.run("health").exit_code == 0
    (env.cwd / "manifests" / "globex.yaml").write_text(
        (env.cwd / "manifests" / "globex.yaml").read_text().split("    - provider: postmark")[0]
    )
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    ring = f"{generate_entry('k2')},{env.vars['RECONCILER_ENCRYPTION_KEYS']}"
    assert env.run("keys", "rotate", RECONCILER_ENCRYPTION_KEYS=ring).exit_code == 0
    for args in (("audit",), ("audit", "verify"), ("audit", "head"), ("keys", "status")):
        assert env.run(*args, RECONCILER_ENCRYPTION_KEYS=ring).exit_code == 0
    touching = [
        s
        for s in statements
        if re.search(r"^\s*(UPDATE|DELETE)\b", s, re.I) and "integration_audit_log" in s
    ]
    assert touching == []
    assert any("INSERT INTO integration_audit_log" in s for s in statements)
    with env.session() as s:
        actions = {a.action for a in s.scalars(select(AuditEntry))}
        assert {"connection.delete", "resource.delete", "keys.rotate"} <= actions
        meta = s.get(StateMeta, 1)
        assert meta is not None and meta.audit_seq == len(list(s.scalars(select(AuditEntry))))


@pytest.mark.databases("postgresql")
def test_postgresql_refuses_update_and_delete_of_audit_rows(env: Env) -> None:
    r = env.run("db", "upgrade")
    assert r.exit_code == 0, r.output
    assert env.run("apply").exit_code == 0
    from sqlalchemy.exc import DBAPIError

    for sql in (
        "UPDATE integration_audit_log SET actor = 'x' WHERE seq = 1",
        "DELETE FROM integration_audit_log WHERE seq = 1",
    ):
        with env.session() as s, pytest.raises(DBAPIError), s.begin():
            s.execute(text(sql))
    assert env.run("audit", "verify").exit_code == 0
