"""`keys rotate` and `keys status`: re-encrypt under the first key; nothing a user sees changes."""

from __future__ import annotations

import re

from sqlalchemy import select, text

from reconciler.crypto import KeyRing, generate_entry
from reconciler.db.schema import AuditEntry, Credential, StateMeta
from tests.conftest import Env, assert_no_canary

# the shipped manifests' nine connections' keys, acme's Postmark account token, and the signing
# secrets of acme's Stripe webhook endpoint and two Quo webhooks (SPEC section 8), rotated with them
CREDENTIALS = 13


def snapshot(env: Env) -> tuple[list[tuple[object, ...]], int, int]:
    """Every credential row, the number of audit entries and the state serial."""
    with env.session() as s:
        creds = [tuple(r) for r in s.execute(text("SELECT * FROM integration_credentials"))]
        audit = len(list(s.scalars(select(AuditEntry))))
        meta = s.get(StateMeta, 1)
        assert meta is not None
        return sorted(creds, key=repr), audit, meta.serial


def test_rotate_then_remove_the_old_key_changes_nothing_a_user_sees(env: Env) -> None:
    old = env.vars["RECONCILER_ENCRYPTION_KEYS"]
    new = generate_entry("k2")
    assert env.run("apply").exit_code == 0
    r = env.run("keys", "status")
    assert r.exit_code == 0
    assert re.search(rf"^k1\s+{CREDENTIALS}\s+first \(encrypts\)$", r.stdout, re.M), r.stdout

    both = f"{new},{old}"
    r = env.run("--verbose", "keys", "rotate", RECONCILER_ENCRYPTION_KEYS=both)
    assert r.exit_code == 0, r.output
    assert (
        f"Re-encrypted {CREDENTIALS} credential(s) under key k2 ({CREDENTIALS} from k1)."
        in r.stdout
    )
    assert_no_canary(r.output)
    assert "rcv1:" not in r.output
    with env.session() as s:
        creds = list(s.scalars(select(Credential)))
        assert len(creds) == CREDENTIALS
        ring = KeyRing.parse(new)
        assert {c.key_id for c in creds} == {"k2"}
        assert {ring.key_id_of(c.ciphertext) for c in creds} == {"k2"}
        assert {c.fingerprint_key_id for c in creds} == {"k2"}
        rotation = s.scalars(select(AuditEntry).where(AuditEntry.action == "keys.rotate")).one()
        assert rotation.organization == "*" and rotation.method == "keys rotate"
        assert (
            f'"credentials": {CREDENTIALS}' in rotation.details and '"to": "k2"' in rotation.details
        )
    r = env.run("keys", "status", RECONCILER_ENCRYPTION_KEYS=both)
    assert re.search(rf"^k2\s+{CREDENTIALS}\s+first \(encrypts\)$", r.stdout, re.M), r.stdout
    assert re.search(r"^k1\s+0\s+yes$", r.stdout, re.M), r.stdout

    env.vars["RECONCILER_ENCRYPTION_KEYS"] = new  # the old key leaves the ring
    r = env.run("plan", "--detailed-exitcode")
    assert r.exit_code == 0, r.output
    assert "No changes." in r.stdout
    r = env.run("health")
    assert r.exit_code == 0, r.output
    assert "8 healthy, 0 unhealthy." in r.stdout
    r = env.run("audit", "verify")
    assert r.exit_code == 0, r.output
    r = env.run("apply")
    assert r.exit_code == 0 and "No changes." in r.stdout
    r = env.run("keys", "status")
    assert re.search(rf"^k2\s+{CREDENTIALS}\s+first \(encrypts\)$", r.stdout, re.M), r.stdout
    assert "k1" not in r.stdout


def test_two_rotations_and_both_old_keys_removed_still_verify(env: Env) -> None:
    k1 = env.vars["RECONCILER_ENCRYPTION_KEYS"]
    k2, k3 = generate_entry("k2"), generate_entry("k3")
    assert env.run("apply", "manifests/globex.yaml").exit_code == 0
    assert env.run("keys", "rotate", RECONCILER_ENCRYPTION_KEYS=f"{k2},{k1}").exit_code == 0
    assert env.run("apply", RECONCILER_ENCRYPTION_KEYS=k2).exit_code == 0  # entries under k2
    assert env.run("keys", "rotate", RECONCILER_ENCRYPTION_KEYS=f"{k3},{k2}").exit_code == 0
    r = env.run("audit", "verify", RECONCILER_ENCRYPTION_KEYS=k3)
    assert r.exit_code == 0, r.output
    # an old entry edited after its key left the ring is caught through the attestation
    with env.session() as s, s.begin():
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("ALTER TABLE integration_audit_log DISABLE TRIGGER USER"))
        s.execute(text("UPDATE integration_audit_log SET actor = 'mallory' WHERE seq = 2"))
    r = env.run("audit", "verify", RECONCILER_ENCRYPTION_KEYS=k3)
    assert r.exit_code == 1
    assert "do not match the digest" in r.output


def test_unknown_key_id_is_named_with_the_credential_and_nothing_changes(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    before = snapshot(env)
    r = env.run("keys", "rotate", RECONCILER_ENCRYPTION_KEYS=generate_entry("k2"))
    assert r.exit_code == 1
    assert "'k1'" in r.output
    assert re.search(r"credential (acme|globex)/[a-z_]+/[a-z@.]+/api_key", r.output), r.output
    assert "nothing was changed" in r.output
    assert snapshot(env) == before
    r = env.run("health", RECONCILER_ENCRYPTION_KEYS=generate_entry("k2"))
    assert r.exit_code == 1 and "'k1'" in r.output and "Traceback" not in r.output
    assert snapshot(env) == before


def test_a_damaged_credential_aborts_the_whole_rotation(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    with env.session() as s, s.begin():
        last = s.scalars(select(Credential).order_by(Credential.id.desc())).first()
        assert last is not None
        last.ciphertext = last.ciphertext[:-4] + (
            "AAAA" if last.ciphertext[-4:] != "AAAA" else "BBBB"
        )
    before = snapshot(env)
    both = f"{generate_entry('k2')},{env.vars['RECONCILER_ENCRYPTION_KEYS']}"
    r = env.run("keys", "rotate", RECONCILER_ENCRYPTION_KEYS=both)
    assert r.exit_code == 1
    assert "failed authentication" in r.output
    assert snapshot(env) == before  # the eight credentials before it were not re-encrypted


def test_rotate_is_idempotent_in_effect_and_verifies(env: Env) -> None:
    assert env.run("apply", "manifests/globex.yaml").exit_code == 0
    for _ in range(2):
        r = env.run("keys", "rotate")
        assert r.exit_code == 0, r.output
        assert "Re-encrypted 2 credential(s) under key k1 (2 from k1)." in r.stdout
    assert env.run("audit", "verify").exit_code == 0
    assert env.run("plan", "manifests/globex.yaml", "--detailed-exitcode").exit_code == 0


def test_rotate_before_any_apply_is_a_plain_error(env: Env) -> None:
    r = env.run("keys", "rotate")
    if env.vars["RECONCILER_DATABASE_URL"].startswith("sqlite"):
        assert r.exit_code == 1 and "does not exist yet" in r.output


def test_removing_a_key_without_rotating_is_an_error_naming_it(env: Env) -> None:
    assert env.run("apply", "manifests/globex.yaml").exit_code == 0
    before = snapshot(env)
    for command in (("plan", "manifests/globex.yaml"), ("apply", "manifests/globex.yaml")):
        r = env.run(*command, RECONCILER_ENCRYPTION_KEYS=generate_entry("k2"))
        assert r.exit_code == 1, r.output
        assert "'k1'" in r.output and "globex/" in r.output
    assert snapshot(env) == before
