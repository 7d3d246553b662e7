"""Every field of an audit entry is covered by its HMAC: editing any one of them in the
database (as someone with SQL access would) makes `audit verify` fail and name the entry."""

from __future__ import annotations

import pytest

from tests.audit.test_chain import applied, tamper, verify_fails  # noqa: F401 (a fixture)
from tests.conftest import Env

EDITS = {
    "git_commit": "git_commit = 'deadbeefdeadbeefdeadbeefdeadbeefdeadbeef'",
    "method": "method = 'apply --plan'",
    "action": "action = 'connection.update'",
    "organization": "organization = 'globex'",
    "created_at": "created_at = '2020-01-01 00:00:00'",
    "target": "target = 'acme/somewhere-else'",
    "key_id": "key_id = 'k1'",  # the same key, so only the MAC can tell (a no-op edit)
}


@pytest.mark.parametrize("field", [f for f in EDITS if f != "key_id"])
def test_edited_field_is_named(applied: Env, field: str) -> None:  # noqa: F811
    tamper(applied, f"UPDATE integration_audit_log SET {EDITS[field]} WHERE seq = 4")
    out = verify_fails(applied)
    assert "audit entry #4" in out and "does not verify" in out


def test_an_edit_that_changes_nothing_passes(applied: Env) -> None:  # noqa: F811
    """The control: rewriting a field with its own value is not tampering."""
    tamper(applied, f"UPDATE integration_audit_log SET {EDITS['key_id']} WHERE seq = 4")
    r = applied.run("audit", "verify")
    assert r.exit_code == 0, r.output
