"""Rules users rely on that a single mutant of the code once broke without a failing test:
the --max-deletions limit at 0 and at exactly the limit, and another user's connection, made
in the SaaS's UI, on an instance whose provider the manifest drops."""

from __future__ import annotations

import json

from sqlalchemy import select, text

from reconciler.db.schema import Connection, Instance
from tests.conftest import Env
from tests.e2e.test_review_and_safety import counts


def empty_globex(env: Env) -> None:
    """globex keeps no connection (allowEmpty): its two connections are to be deleted."""
    path = env.cwd / "manifests" / "globex.yaml"
    path.write_text(
        path.read_text().split("  connections:")[0] + "  allowEmpty: true\n  connections: []\n"
    )


def deletions(env: Env) -> int:
    r = env.run("plan", "--format", "json")
    assert r.exit_code == 0, r.output
    changes = json.loads(r.stdout)["changes"]
    return sum(1 for c in changes if c["action"] == "delete" and c["kind"] == "connection")


def globex_connections(env: Env) -> int:
    with env.session() as s:
        return len(
            s.scalars(
                select(Connection).join(Instance).where(Instance.organization == "globex")
            ).all()
        )


def test_max_deletions_zero_allows_a_plan_without_deletions(env: Env) -> None:
    r = env.run("apply", "--max-deletions", "0")
    assert r.exit_code == 0, r.output
    assert "Apply complete" in r.output


def test_max_deletions_zero_refuses_any_deletion(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    empty_globex(env)
    assert deletions(env) == 2
    before = counts(env)
    r = env.run("apply", "--max-deletions", "0")
    assert r.exit_code == 1
    assert "deletes 2 connection(s), more than --max-deletions 0" in r.output
    assert counts(env) == before


def test_max_deletions_equal_to_the_plan_is_allowed(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    empty_globex(env)
    assert deletions(env) == 2
    assert globex_connections(env) == 2
    r = env.run("apply", "--max-deletions", "2")
    assert r.exit_code == 0, r.output
    assert globex_connections(env) == 0


def test_ui_connection_of_another_user_stays_when_the_manifest_drops_the_provider(
    env: Env,
) -> None:
    assert env.run("apply").exit_code == 0
    with env.session() as s, s.begin():
        # as the SaaS's UI would: a second user connects to acme's Quo instance
        iid = s.scalar(
            text(
                "SELECT id FROM integration_instances "
                "WHERE organization = 'acme' AND provider = 'quo'"
            )
        )
        s.execute(
            text(
                "INSERT INTO integration_connections (instance_id, user_email, status) "
                "VALUES (:i, 'clerk@acme.example', 'connected')"
            ),
            {"i": iid},
        )
    path = env.cwd / "manifests" / "acme.yaml"
    body = path.read_text()
    start = body.index("    - provider: quo")
    end = body.index("    - provider: mapbox")
    path.write_text(body[:start] + body[end:])

    r = env.run("apply")
    assert r.exit_code == 0, r.output
    with env.session() as s:
        instance = s.scalar(
            select(Instance).where(Instance.organization == "acme", Instance.provider == "quo")
        )
        assert instance is not None, "the instance another user's connection lives on stays"
        users = {
            c.user_email: c.status
            for c in s.scalars(select(Connection).where(Connection.instance_id == instance.id))
        }
    assert users.get("clerk@acme.example") == "connected", users
    assert "ops@acme.example" not in users, users  # the manifest's own connection is gone
    r = env.run("plan", "--detailed-exitcode")
    assert r.exit_code == 0, r.output


def test_plan_for_one_provider_sees_its_existing_connections(env: Env) -> None:
    """``--provider`` narrows the plan to one provider's connections, which exist already."""
    assert env.run("apply").exit_code == 0
    r = env.run("plan", "--provider", "geoapify", "--detailed-exitcode")
    assert r.exit_code == 0 and "No changes." in r.output, r.output
    # (geoapify: no provider-side resources, whose refresh reads with the new key, which the
    # simulator treats as another account)
    env.vars["ACME_GEOAPIFY_KEY"] = "geo_rotated_by_hand"
    r = env.run("plan", "--provider", "geoapify", "--format", "json")
    changes = {c["address"]: c["action"] for c in json.loads(r.stdout)["changes"]}
    assert changes == {"acme/geoapify": "update"}, changes
