"""Health checks as users see them: `health`, status transitions, OAuth2, rotation (issue 5)."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from reconciler.db.schema import AuditEntry, Connection, Credential, Health, Instance
from tests.conftest import REPO, Env
from tests.e2e.manifests import organization, write

OAUTH = str(REPO / "tests" / "fixtures" / "catalog_oauth")
DENIED = "Connection was cancelled. You denied access."


def statuses(env: Env, org: str, provider: str) -> tuple[str, str]:
    with env.session() as s:
        inst = s.scalar(
            select(Instance).where(Instance.organization == org, Instance.provider == provider)
        )
        assert inst is not None
        conn = s.scalar(select(Connection).where(Connection.instance_id == inst.id))
        assert conn is not None
        return inst.status, conn.status


def test_health_moves_statuses_both_ways_with_audit(env: Env, sim) -> None:
    assert env.run("apply").exit_code == 0
    r = env.run("health")
    assert r.exit_code == 0, r.output
    assert "8 healthy, 0 unhealthy." in r.stdout
    sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    r = env.run("health", "--org", "globex", "--format", "json")
    assert r.exit_code == 1
    doc = {d["address"]: d for d in json.loads(r.stdout)}
    assert doc["globex/stripe"]["failure_type"] == "invalid_credentials"
    assert doc["globex/stripe"]["message"] == (
        "The API key you entered is invalid. Please check your credentials."
    )
    assert statuses(env, "globex", "stripe") == ("error", "error")
    sim.restore(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    r = env.run("health", "--provider", "stripe")
    assert r.exit_code == 0
    assert statuses(env, "globex", "stripe") == ("active", "connected")
    with env.session() as s:
        moves = [
            json.loads(a.details)
            for a in s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "connection.status")
                .order_by(AuditEntry.seq)
            )
        ]
    assert [(m["from"], m["to"]) for m in moves] == [("connected", "error"), ("error", "connected")]


def test_health_never_checks_an_inactive_instance(env: Env, sim) -> None:
    assert env.run("apply").exit_code == 0
    before = sim.request_count("mapbox")
    assert env.run("health").exit_code == 0
    assert sim.request_count("mapbox") == before == 0


def test_status_shows_history(env: Env, sim) -> None:
    assert env.run("apply").exit_code == 0
    sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    env.run("health", "--org", "globex")
    env.run("health", "--org", "globex")
    r = env.run("status", "--format", "json")
    rows = {f"{x['organization']}/{x['provider']}": x for x in json.loads(r.stdout)}
    conn = rows["globex/stripe"]["connections"][0]
    assert conn["history"]["consecutive_failures"] == 2
    assert conn["last_health"]["failing_since"] is not None
    assert conn["history"]["p50_ms"] is not None
    assert rows["acme/stripe"]["connections"][0]["identity"]["mode"] == "test"
    text = env.run("status").stdout
    assert "2x since" in text


def test_toggle_deactivates_without_checks_and_reactivation_checks(env: Env, sim) -> None:
    assert env.run("apply").exit_code == 0
    path = env.cwd / "manifests" / "acme.yaml"
    path.write_text(path.read_text().replace("      active: false\n", ""))
    r = env.run("plan", "--format", "json")
    changes = json.loads(r.stdout)["changes"]
    assert [(c["address"], c["reason_code"]) for c in changes] == [("acme/mapbox", "reactivated")]
    before = sim.request_count("mapbox")
    assert env.run("apply").exit_code == 0
    assert sim.request_count("mapbox") == before + 1
    assert statuses(env, "acme", "mapbox") == ("active", "connected")
    path.write_text(
        path.read_text().replace(
            "    - provider: mapbox\n", "    - provider: mapbox\n      active: false\n"
        )
    )
    assert env.run("apply").exit_code == 0
    assert sim.request_count("mapbox") == before + 1
    assert statuses(env, "acme", "mapbox")[0] == "inactive"
    with env.session() as s:
        inst = s.scalar(select(Instance).where(Instance.provider == "mapbox"))
        assert inst is not None
        creds = s.scalars(
            select(Credential).join(Connection).where(Connection.instance_id == inst.id)
        ).all()
        assert len(creds) == 1  # kept while inactive


def test_rotations_under_concurrency_swap_only_verified_keys(env: Env) -> None:
    orgs = [
        organization(
            f"org{i}",
            [
                {
                    "provider": "stripe",
                    "owner": "ops@example.com",
                    "credentials": {"api_key": "${KEY_" + str(i) + "}"},
                }
            ],
        )
        for i in range(6)
    ]
    write(env.cwd / "manifests", *orgs)
    for i in range(6):
        env.vars[f"KEY_{i}"] = f"sk_test_first_{i}"
    assert env.run("apply", "--parallelism", "6").exit_code == 0
    with env.session() as s:
        old = {c.connection_id: c.ciphertext for c in s.scalars(select(Credential))}
    for i in range(6):
        env.vars[f"KEY_{i}"] = f"sk_test_invalid_{i}" if i % 2 else f"sk_test_second_{i}"
    r = env.run("apply", "--parallelism", "6")
    assert r.exit_code == 1
    with env.session() as s:
        for inst in s.scalars(select(Instance)):
            i = int(inst.organization[3:])
            conn = s.scalar(select(Connection).where(Connection.instance_id == inst.id))
            assert conn is not None
            cred = s.scalar(select(Credential).where(Credential.connection_id == conn.id))
            assert cred is not None
            assert (cred.ciphertext == old[conn.id]) == bool(i % 2)
            assert (inst.status, conn.status) == ("active", "connected")
        attempts = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "credential.rotation_attempt")
        ).all()
        assert len(attempts) == 6
        outcomes = [
            a.action
            for a in s.scalars(
                select(AuditEntry).where(
                    AuditEntry.action.in_(["connection.update", "connection.update_failed"])
                )
            )
        ]
        assert sorted(outcomes) == ["connection.update"] * 3 + ["connection.update_failed"] * 3


def oauth_env(env: Env, sim, refresh: str) -> None:
    write(
        env.cwd / "manifests",
        organization(
            "acme",
            [
                {
                    "provider": "oauthdemo",
                    "owner": "ops@example.com",
                    "credentials": {
                        "client_id": "${OAUTH_ID}",
                        "client_secret": "${OAUTH_SECRET}",
                        "refresh_token": "${OAUTH_REFRESH}",
                    },
                }
            ],
        ),
    )
    env.vars.update(
        {
            "OAUTH_ID": "client-1",
            "OAUTH_SECRET": "secret-CANARYoauth",
            "OAUTH_REFRESH": refresh,
            "RECONCILER_BASE_URL_OAUTHDEMO": sim.base_url("oauthdemo"),
        }
    )


def test_oauth_connects_refreshes_and_reports_denial(env: Env, sim) -> None:
    oauth_env(env, sim, "refresh-shortlived-1")
    r = env.run("apply", "--catalog", OAUTH)
    assert r.exit_code == 0, r.output
    with env.session() as s:
        fields = {c.field: c for c in s.scalars(select(Credential))}
    assert set(fields) == {"client_id", "client_secret", "refresh_token", "access_token"}
    assert fields["access_token"].expires_at is not None
    assert "No changes." in env.run("plan", "--catalog", OAUTH).stdout
    time.sleep(1.1)  # the simulator's short-lived access token expires
    r = env.run("health", "--catalog", OAUTH)
    assert r.exit_code == 0, r.output
    with env.session() as s:
        access = s.scalar(select(Credential).where(Credential.field == "access_token"))
        assert access is not None and access.ciphertext != fields["access_token"].ciphertext
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "credential.refresh"))


def test_oauth_revoked_refresh_token_is_oauth_denied(env: Env, sim) -> None:
    oauth_env(env, sim, "refresh-revoked-2")
    r = env.run("apply", "--catalog", OAUTH)
    assert r.exit_code == 1
    assert DENIED in r.output
    with env.session() as s:
        h = s.scalars(select(Health)).one()
        assert (h.failure_type, h.message) == ("oauth_denied", DENIED)
        assert not s.scalars(select(Credential)).all()


def test_a_settings_change_does_not_clear_an_error(env: Env, sim) -> None:
    assert env.run("apply").exit_code == 0
    sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    assert env.run("health", "--org", "globex").exit_code == 1
    path = env.cwd / "manifests" / "globex.yaml"
    path.write_text(
        path.read_text().replace(
            "    - provider: stripe\n", "    - provider: stripe\n      preventDestroy: true\n"
        )
    )
    r = env.run("plan", "--format", "json")
    assert [c["reason_code"] for c in json.loads(r.stdout)["changes"]] == ["settings_changed"]
    assert env.run("apply").exit_code == 0
    assert statuses(env, "globex", "stripe") == ("error", "error")
