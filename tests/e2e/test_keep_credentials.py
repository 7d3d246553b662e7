"""`credentials: keep` (SPEC section 9): manage a connection, not its credentials."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select, text

from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.schema import AuditEntry, Connection, Credential, Instance
from tests.conftest import Env, assert_no_canary

STRIPE_REFS = "credentials:\n        api_key: ${ACME_STRIPE_SECRET_KEY}"


def acme(env: Env) -> Path:
    return env.cwd / "manifests" / "acme.yaml"


def keep_acme_stripe(env: Env) -> None:
    path = acme(env)
    path.write_text(path.read_text().replace(STRIPE_REFS, "credentials: keep"))
    env.vars.pop("ACME_STRIPE_SECRET_KEY", None)


def stripe_credentials(env: Env) -> list[tuple[str, str]]:
    with env.session() as s:
        return [
            (c.field, c.ciphertext)
            for c in s.scalars(
                select(Credential)
                .join(Connection)
                .join(Instance)
                .where(Instance.organization == "acme", Instance.provider == "stripe")
            )
        ]


def counts(env: Env) -> tuple[int, int, int]:
    with env.session() as s:
        return (
            s.scalar(select(func.count()).select_from(Connection)) or 0,
            s.scalar(select(func.count()).select_from(Credential)) or 0,
            s.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        )


def plan_json(env: Env, *args: str) -> dict:
    r = env.run("plan", "--format", "json", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_keep_needs_no_variable_and_changes_nothing(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    stored = stripe_credentials(env)
    keep_acme_stripe(env)
    r = env.run("validate")
    assert r.exit_code == 0, r.output
    assert "ACME_STRIPE_SECRET_KEY" not in r.output
    r = env.run("plan")
    assert r.exit_code == 0, r.output
    assert "No changes." in r.stdout
    r = env.run("apply")
    assert r.exit_code == 0 and "No changes." in r.stdout
    assert stripe_credentials(env) == stored


def test_swapping_keep_for_a_variable_plans_one_credential_update(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    keep_acme_stripe(env)
    assert "No changes." in env.run("plan").stdout
    path = acme(env)
    path.write_text(path.read_text().replace("credentials: keep", STRIPE_REFS))
    # another key of the same Stripe account: the provider side read with it is unchanged
    env.vars["ACME_STRIPE_SECRET_KEY"] = "sk_test_acct_1AcmeCo_CANARYswapped-0c1d"
    doc = plan_json(env)
    assert [(c["address"], c["action"], c["changed"]) for c in doc["changes"]] == [
        ("acme/stripe", "update", ["credentials.api_key"])
    ]
    assert doc["summary"]["update"] == 1
    r = env.run("plan")
    assert "~ credentials.api_key = (sensitive) -> (sensitive)  (value changed)" in r.stdout
    r = env.run("plan", "--format", "markdown")
    assert "credentials.api_key" in r.stdout
    for out in (r.output, json.dumps(doc)):
        assert "CANARYswapped" not in out
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    assert "created at Stripe" not in r.stdout  # the endpoint stays; its secret too
    assert "No changes." in env.run("plan").stdout


def test_a_new_connection_with_keep_is_refused_naming_it(env: Env) -> None:
    assert env.run("db", "upgrade").exit_code == 0
    keep_acme_stripe(env)
    assert env.run("validate").exit_code == 0  # offline, it cannot know
    before = counts(env)
    for command in ("plan", "apply"):
        r = env.run(command)
        assert r.exit_code == 1, r.output
        assert "acme/stripe says credentials: keep" in r.output
        assert "nothing to keep" in r.output
        assert "acme.yaml:13" in r.output
        assert counts(env) == before


def test_keep_cannot_change_the_owner(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    keep_acme_stripe(env)
    path = acme(env)
    text_ = path.read_text().replace(
        "      permissions: [settings.view]", "      permissions: [settings.edit]"
    )
    text_ = text_.replace(
        "provider: stripe\n      owner: ops@acme.example",
        "provider: stripe\n      owner: viewer@acme.example",
    )
    path.write_text(text_)
    r = env.run("plan")
    assert r.exit_code == 1
    assert "owner changes from ops@acme.example to viewer@acme.example" in r.output


def insert_ui_connection(env: Env, ring: KeyRing) -> str:
    """A connection made in the SaaS's screens: plain SQL, only the columns SPEC section 3 lists;
    its key encrypted by the SaaS (here with the same ring, as a shared deployment would)."""
    with env.session() as s, s.begin():
        s.execute(
            text(
                "INSERT INTO integration_instances (organization, provider, status) "
                "VALUES ('globex', 'quo', 'active')"
            )
        )
        iid = s.scalar(
            text(
                "SELECT id FROM integration_instances "
                "WHERE organization = 'globex' AND provider = 'quo'"
            )
        )
        s.execute(
            text(
                "INSERT INTO integration_connections (instance_id, user_email, status) "
                "VALUES (:i, 'admin@globex.example', 'connected')"
            ),
            {"i": iid},
        )
        cid = s.scalar(
            text("SELECT id FROM integration_connections WHERE instance_id = :i"), {"i": iid}
        )
        envelope = ring.encrypt(
            "quoCANARYui-made-7e",
            CredentialAddress("globex", "quo", "admin@globex.example", "api_key"),
        )
        s.execute(
            text(
                "INSERT INTO integration_credentials (connection_id, field, ciphertext, key_id) "
                "VALUES (:c, 'api_key', :t, :k)"
            ),
            {"c": cid, "t": envelope, "k": ring.primary_id},
        )
    return envelope


def test_adopting_a_ui_connection_with_keep_then_managing_its_credentials(
    env: Env, tmp_path: Path
) -> None:
    assert env.run("apply").exit_code == 0
    ring = KeyRing.from_env(env.vars)
    envelope = insert_ui_connection(env, ring)
    path = env.cwd / "manifests" / "globex.yaml"
    path.write_text(
        path.read_text()
        + "    - provider: quo\n      owner: admin@globex.example\n      adopt: true\n"
        "      credentials: keep\n"
    )
    doc = plan_json(env)
    (change,) = doc["changes"]
    assert (change["address"], change["action"]) == ("globex/quo", "adopt")
    assert change["after"]["credentials"] == {"api_key": "(sensitive)"}
    assert change["after"]["credentials_kept"] is True
    assert "stored credentials are kept" in change["reason"]
    # through a saved plan
    plan_file = tmp_path / "adopt.json"
    assert env.run("plan", "--out", str(plan_file)).exit_code == 0
    saved = json.loads(plan_file.read_text())
    (kept,) = [c for c in saved["changes"] if c["address"] == "globex/quo"]
    assert kept["after"]["credentials_kept"] is True
    r = env.run("apply", "--plan", str(plan_file))
    assert r.exit_code == 0, r.output
    assert "globex/quo: adopted" in r.stdout
    assert "check globex/quo" not in r.stdout  # nothing new was checked
    with env.session() as s:
        conn = s.scalar(
            select(Connection)
            .join(Instance)
            .where(Instance.organization == "globex", Instance.provider == "quo")
        )
        assert conn is not None and conn.managed_by == "manifest" and conn.status == "connected"
        stored = s.scalars(select(Credential).where(Credential.connection_id == conn.id)).all()
        assert [(c.field, c.ciphertext) for c in stored] == [("api_key", envelope)]
    assert "No changes." in env.run("plan").stdout
    # the report shows the adopted connection
    r = env.run("report", "--out", str(tmp_path / "site"), "--plan", str(plan_file))
    assert r.exit_code == 0, r.output
    # swapping keep for a variable: exactly one credential update
    path.write_text(
        path.read_text().replace("credentials: keep", 'credentials: {api_key: "${GLOBEX_QUO_KEY}"}')
    )
    env.vars["GLOBEX_QUO_KEY"] = "quoCANARYmanaged-5a"
    doc = plan_json(env)
    assert [(c["address"], c["action"], c["changed"]) for c in doc["changes"]] == [
        ("globex/quo", "update", ["credentials.api_key"])
    ]
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    assert "No changes." in env.run("plan").stdout
    assert_no_canary(r.output)
