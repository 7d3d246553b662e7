"""The foundation, end to end, as a user sees it: exit codes, plan output, rows, audit."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from reconciler.db.schema import AuditEntry, Connection, Credential, Health, Instance, Resource
from reconciler.simulator import Simulator
from tests.conftest import CANARIES, Env, assert_no_canary

SPEC_MESSAGES = {
    "invalid_credentials": "The API key you entered is invalid. Please check your credentials.",
    "rate_limited": "Connection test was rate limited. Please wait a moment.",
}


def session(env: Env) -> Session:
    return env.session()


def test_plan_apply_plan_round_trip(env: Env) -> None:
    r = env.run("plan", "--detailed-exitcode")
    assert r.exit_code == 2, r.output
    assert "Plan: 21 to create, 0 to update, 0 to delete." in r.stdout
    assert "+ acme/stripe" in r.stdout
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    assert "Stripe connected successfully" in r.stdout
    r = env.run("plan", "--detailed-exitcode")
    assert r.exit_code == 0, r.output
    assert "No changes." in r.stdout
    r = env.run("apply")
    assert r.exit_code == 0
    assert "No changes." in r.stdout


def test_plan_does_not_create_the_database(env: Env) -> None:
    r = env.run("plan")
    assert r.exit_code == 0
    url = env.vars["RECONCILER_DATABASE_URL"]
    if url.startswith("sqlite"):
        assert not (env.cwd / url.split("///", 1)[1]).exists()


def test_apply_writes_the_six_tables(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    with session(env) as s:
        instances = {(i.organization, i.provider): i for i in s.scalars(select(Instance))}
        assert len(instances) == 9
        assert instances[("acme", "stripe")].status == "active"
        assert instances[("acme", "mapbox")].status == "inactive"
        conns = list(s.scalars(select(Connection)))
        assert {c.status for c in conns} == {"connected"}
        assert {c.user_email for c in conns} == {"ops@acme.example", "admin@globex.example"}
        creds = list(s.scalars(select(Credential)))
        # nine api keys, acme's Postmark account token, and the signing secrets Stripe and Quo
        # issued for acme's webhook endpoint and its two Quo webhooks
        assert len(creds) == 13
        assert all(c.key_id == "k1" for c in creds)
        assert sorted(c.field.split(".")[0] for c in creds) == [
            "account_token",
            *["api_key"] * 9,
            "webhook_endpoints",
            "webhooks",
            "webhooks",
        ]
        kinds = {r.kind for r in s.scalars(select(Resource))}
        assert kinds == {
            "sender_emails",
            "phone_numbers",
            "webhook_endpoints",
            "webhooks",
            "model",
            "usage_monitoring",
        }
        defaults = s.scalars(
            select(Resource).where(Resource.kind == "sender_emails", Resource.is_default.is_(True))
        ).all()
        assert len(defaults) == 2  # one per organization
        health = list(s.scalars(select(Health)))
        assert len(health) == 8  # mapbox is inactive: not checked
        assert all(h.status == "healthy" and h.response_ms >= 0 for h in health)
        audit = list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        assert len(audit) == 21
        assert {a.actor for a in audit} == {"ci-bot"}
        assert {a.method for a in audit} == {"apply"}
        assert "connection.create" in {a.action for a in audit}


def test_no_secret_anywhere(env: Env) -> None:
    outputs = [
        env.run("plan"),
        env.run("plan", "--format", "json"),
        env.run("plan", "--format", "markdown"),
        env.run("--verbose", "apply"),
        env.run("status"),
        env.run("audit"),
        env.run("--verbose", "health"),
    ]
    for r in outputs:
        assert_no_canary(r.output)
    with session(env) as s:
        dump = []
        for table in (
            "integration_instances",
            "integration_connections",
            "integration_credentials",
            "integration_resources",
            "integration_health",
            "integration_audit_log",
        ):
            dump += [repr(tuple(row)) for row in s.execute(text(f"SELECT * FROM {table}"))]
    assert_no_canary("\n".join(dump), "database rows")
    url = env.vars["RECONCILER_DATABASE_URL"]
    if url.startswith("sqlite"):
        assert_no_canary((env.cwd / url.split("///", 1)[1]).read_bytes(), "database file")


def test_rejected_key_leaves_no_credential_then_fixing_connects(env: Env) -> None:
    env.vars["ACME_STRIPE_SECRET_KEY"] = "sk_test_invalid_CANARY"
    r = env.run("apply")
    assert r.exit_code == 1
    assert SPEC_MESSAGES["invalid_credentials"] in r.output
    with session(env) as s:
        inst = s.scalar(
            select(Instance).where(Instance.organization == "acme", Instance.provider == "stripe")
        )
        assert inst is not None and inst.status == "error"
        conn = s.scalar(select(Connection).where(Connection.instance_id == inst.id))
        assert conn is not None and conn.status == "error"
        assert (
            s.scalar(
                select(func.count())
                .select_from(Credential)
                .where(Credential.connection_id == conn.id)
            )
            == 0
        )
        h = s.scalars(select(Health).where(Health.instance_id == inst.id)).one()
        assert (h.status, h.failure_type, h.message) == (
            "unhealthy",
            "invalid_credentials",
            SPEC_MESSAGES["invalid_credentials"],
        )
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "connection.create_failed"))
        # the other connections went ahead
        assert (
            s.scalar(select(func.count()).select_from(Instance).where(Instance.status == "active"))
            == 7
        )
    r = env.run("plan")
    assert "~ acme/stripe" in r.stdout and "retry" in r.stdout
    env.vars["ACME_STRIPE_SECRET_KEY"] = CANARIES["ACME_STRIPE_SECRET_KEY"]
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    with session(env) as s:
        inst = s.scalar(
            select(Instance).where(Instance.organization == "acme", Instance.provider == "stripe")
        )
        assert inst is not None and inst.status == "active"
        # nine api keys, the Postmark account token, the two Quo webhooks' signing secrets (made
        # by the first apply) and the signing secret of the webhook endpoint now made at Stripe
        assert s.scalar(select(func.count()).select_from(Credential)) == 13


def test_rate_limited_and_outage_messages(env: Env) -> None:
    env.vars["ACME_QUO_KEY"] = "quo-ratelimited"
    env.vars["ACME_GEOAPIFY_KEY"] = "geo-outage"
    r = env.run("apply")
    assert r.exit_code == 1
    assert "Connection test was rate limited. Please wait a moment." in r.output
    assert "Could not reach Geoapify. The service may be temporarily unavailable." in r.output
    with session(env) as s:
        types = {
            h.failure_type for h in s.scalars(select(Health).where(Health.status == "unhealthy"))
        }
        assert types == {"rate_limited", "unreachable"}


def test_changed_secret_is_an_update_and_reencrypts(env: Env, sim: Simulator) -> None:
    assert env.run("apply").exit_code == 0
    (endpoint,) = sim.objects("stripe", "webhook_endpoints", CANARIES["ACME_STRIPE_SECRET_KEY"])
    with session(env) as s:
        before = s.scalar(
            select(Credential.ciphertext)
            .join(Connection)
            .join(Instance)
            .where(Instance.organization == "acme", Instance.provider == "stripe")
            .where(Credential.field == "api_key")
        )
    # a rolled key of the same Stripe account: the provider side is read with it, and the
    # webhook endpoint made with the old key is there
    env.vars["ACME_STRIPE_SECRET_KEY"] = "sk_test_acct_1AcmeCo_CANARYrotated-0000"
    r = env.run("plan", "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [(c["address"], c["action"]) for c in doc["changes"]] == [("acme/stripe", "update")]
    assert doc["summary"]["update"] == 1
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    assert "created at Stripe" not in r.stdout
    assert sim.objects("stripe", "webhook_endpoints", env.vars["ACME_STRIPE_SECRET_KEY"]) == [
        endpoint
    ]  # the same endpoint, its signing secret unchanged
    assert "No changes." in env.run("plan").stdout
    with session(env) as s:
        after = s.scalar(
            select(Credential.ciphertext)
            .join(Connection)
            .join(Instance)
            .where(Instance.organization == "acme", Instance.provider == "stripe")
            .where(Credential.field == "api_key")
        )
        assert after != before
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "connection.update"))


def test_failed_rotation_keeps_the_working_credential(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    with session(env) as s:
        before = s.scalar(
            select(Credential.ciphertext)
            .join(Connection)
            .join(Instance)
            .where(Instance.organization == "acme", Instance.provider == "stripe")
        )
    env.vars["ACME_STRIPE_SECRET_KEY"] = "sk_test_invalid_rotation"
    r = env.run("apply")
    assert r.exit_code == 1
    assert SPEC_MESSAGES["invalid_credentials"] in r.output
    with session(env) as s:
        inst = s.scalar(
            select(Instance).where(Instance.organization == "acme", Instance.provider == "stripe")
        )
        assert inst is not None and inst.status == "active"
        conn = s.scalar(select(Connection).where(Connection.instance_id == inst.id))
        assert conn is not None and conn.status == "connected"
        after = s.scalar(select(Credential.ciphertext).where(Credential.connection_id == conn.id))
        assert after == before
        last = s.scalars(
            select(Health).where(Health.instance_id == inst.id).order_by(Health.id.desc())
        ).first()
        assert last is not None and last.failure_type == "invalid_credentials"


def test_removed_connection_is_torn_down_with_audit(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    path = env.cwd / "manifests" / "globex.yaml"
    text_ = path.read_text()
    path.write_text(text_.split("    - provider: postmark")[0])
    r = env.run("plan", "--format", "json")
    changes = {(c["address"], c["action"]) for c in json.loads(r.stdout)["changes"]}
    assert ("globex/postmark", "delete") in changes
    assert ("globex/postmark/sender_emails/hello@globex.example", "delete") in changes
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    with session(env) as s:
        assert (
            s.scalar(
                select(Instance).where(
                    Instance.organization == "globex", Instance.provider == "postmark"
                )
            )
            is None
        )
        assert (
            s.scalar(
                select(func.count())
                .select_from(Resource)
                .join(Instance)
                .where(Instance.organization == "globex")
            )
            == 0
        )
        actions = {(a.action, a.target) for a in s.scalars(select(AuditEntry))}
        assert ("connection.delete", "globex/postmark") in actions
        assert ("resource.delete", "globex/postmark/sender_emails/hello@globex.example") in actions


def test_unset_variable_names_it_and_writes_nothing(env: Env) -> None:
    del env.vars["ACME_QUO_KEY"]
    r = env.run("apply")
    assert r.exit_code == 1
    assert "ACME_QUO_KEY" in r.output
    url = env.vars["RECONCILER_DATABASE_URL"]
    if url.startswith("sqlite"):
        assert not (env.cwd / url.split("///", 1)[1]).exists()


def test_missing_encryption_keys_is_a_clear_error(env: Env) -> None:
    del env.vars["RECONCILER_ENCRYPTION_KEYS"]
    r = env.run("apply")
    assert r.exit_code == 1
    assert "RECONCILER_ENCRYPTION_KEYS" in r.output


def test_audit_records_actor_method_and_git_commit(env: Env) -> None:
    import subprocess

    folder = env.cwd / "manifests"
    git = ["git", "-C", str(folder), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "manifests"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert env.run("apply", "--actor", "release-bot").exit_code == 0
    with session(env) as s:
        rows = list(s.scalars(select(AuditEntry)))
    assert rows and {(a.actor, a.method, a.git_commit) for a in rows} == {
        ("release-bot", "apply", head)
    }


@pytest.mark.databases("sqlite")  # the URL is replaced: one run is enough
def test_an_unreachable_database_is_a_plain_error(env: Env) -> None:
    r = env.run("plan", RECONCILER_DATABASE_URL="postgresql://postgres@127.0.0.1:9/none")
    assert r.exit_code == 1
    assert "the database failed" in r.output and "RECONCILER_DATABASE_URL" in r.output
    assert "unexpected" not in r.output


def test_verbose_and_log_file_work_after_the_command_name_too(env: Env) -> None:
    log = env.cwd / "run.log"
    r = env.run("apply", "--verbose", "--log-file", str(log))
    assert r.exit_code == 0
    assert "DEBUG" in r.stderr and "DEBUG" in log.read_text()
    assert_no_canary(r.output + log.read_text(), "verbose output and log file")
