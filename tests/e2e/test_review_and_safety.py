"""Plans for review and teardown that cannot hurt production (issue 3), as users see them."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select, text

from reconciler.db.schema import AuditEntry, Connection, Credential, Instance
from tests.conftest import REPO, Env, assert_no_canary
from tests.e2e.manifests import connection, organization, write

DEPS = str(REPO / "tests" / "fixtures" / "catalog_deps")


def counts(env: Env) -> tuple[int, int, int, int]:
    with env.session() as s:
        return (
            s.scalar(select(func.count()).select_from(Instance)) or 0,
            s.scalar(select(func.count()).select_from(Connection)) or 0,
            s.scalar(select(func.count()).select_from(Credential)) or 0,
            s.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        )


# -- saved plans ---------------------------------------------------------------------------


def test_saved_plan_applies_exactly_what_it_showed(env: Env, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    r = env.run("plan", "--out", str(plan_file))
    assert r.exit_code == 0, r.output
    assert_no_canary(plan_file.read_text(), "plan file")
    # the working tree changes after the plan was made; apply --plan ignores it
    (env.cwd / "manifests" / "globex.yaml").unlink()
    r = env.run("apply", "--plan", str(plan_file))
    assert r.exit_code == 0, r.output
    with env.session() as s:
        orgs = set(s.scalars(select(Instance.organization)))
    assert orgs == {"acme", "globex"}


def test_saved_plan_is_stale_after_another_apply(env: Env, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    assert env.run("plan", "--out", str(plan_file)).exit_code == 0
    assert env.run("apply").exit_code == 0
    before = counts(env)
    r = env.run("apply", "--plan", str(plan_file))
    assert r.exit_code == 1
    assert "Saved plan is stale" in r.output
    assert counts(env) == before


def test_saved_plan_is_stale_when_a_secret_changed(env: Env, tmp_path: Path) -> None:
    assert env.run("apply").exit_code == 0
    env.vars["ACME_QUO_KEY"] = "quo-rotated-CANARYx"
    plan_file = tmp_path / "plan.json"
    assert env.run("plan", "--out", str(plan_file)).exit_code == 0
    env.vars["ACME_QUO_KEY"] = "quo-rotated-again-CANARYy"
    before = counts(env)
    r = env.run("apply", "--plan", str(plan_file))
    assert r.exit_code == 1
    assert "Saved plan is stale" in r.output
    assert "ACME_QUO_KEY" in r.output
    assert counts(env) == before


def test_saved_plan_is_stale_when_the_format_version_differs(env: Env, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    assert env.run("plan", "--out", str(plan_file)).exit_code == 0
    doc = json.loads(plan_file.read_text())
    doc["format_version"] = "2.0"
    plan_file.write_text(json.dumps(doc))
    r = env.run("apply", "--plan", str(plan_file))
    assert r.exit_code == 1 and "Saved plan is stale" in r.output


# -- deterministic, secret-free plans ------------------------------------------------------


def test_json_plan_is_byte_identical_and_secret_free(env: Env) -> None:
    a = env.run("plan", "--format", "json").stdout
    b = env.run("plan", "--format", "json").stdout
    assert a == b
    doc = json.loads(a)
    assert doc["format_version"].startswith("1.")
    assert set(doc["summary"]) >= {"create", "update", "delete"}
    for change in doc["changes"]:
        assert change["address"].count("/") >= 1
        assert change["action"] in {"create", "update", "delete", "adopt", "orphan"}
        assert change["reason"]
    stripe = next(c for c in doc["changes"] if c["address"] == "acme/stripe")
    assert stripe["after"]["credentials"] == {"api_key": "(sensitive)"}
    for fmt in ("text", "json", "markdown"):
        assert_no_canary(env.run("plan", "--format", fmt).output, f"plan --format {fmt}")


def test_markdown_plan_of_thousands_of_changes_is_truncated(env: Env) -> None:
    orgs = [
        organization(
            f"org{i:04d}",
            [
                connection("stripe", "ACME_STRIPE_SECRET_KEY"),
                connection("postmark", "ACME_POSTMARK_TOKEN"),
            ],
        )
        for i in range(1500)
    ]
    write(env.cwd / "manifests", *orgs)
    r = env.run("plan", "--format", "markdown")
    assert r.exit_code == 0
    md = r.stdout
    assert len(md) < 65_000
    assert "more change(s) not shown" in md
    assert "| organization | create | update | delete |" in md
    assert md.count("<details>") == md.count("</details>")


# -- dependency order ----------------------------------------------------------------------


def deps_env(env: Env, sim_url: str) -> None:
    env.vars["RECONCILER_BASE_URL_LEDGER"] = sim_url
    env.vars["RECONCILER_BASE_URL_INVOICING"] = sim_url
    env.vars["LEDGER_KEY"] = "sk_test_ledger_good"
    env.vars["INVOICING_KEY"] = "sk_test_invoicing_good"


def test_dependencies_connect_first_and_a_failed_dependency_blocks(env: Env, sim) -> None:
    deps_env(env, sim.base_url("stripe"))
    write(
        env.cwd / "manifests",
        organization(
            "acme", [connection("invoicing", "INVOICING_KEY"), connection("ledger", "LEDGER_KEY")]
        ),
    )
    env.vars["LEDGER_KEY"] = "sk_test_invalid_ledger"
    r = env.run("apply", "--catalog", DEPS)
    assert r.exit_code == 1
    assert "blocked" in r.output and "acme/ledger" in r.output
    with env.session() as s:
        assert s.scalar(select(func.count()).select_from(Credential)) == 0
        inv = s.scalar(select(Instance).where(Instance.provider == "invoicing"))
        assert inv is None  # never touched
    env.vars["LEDGER_KEY"] = "sk_test_ledger_good"
    r = env.run("apply", "--catalog", DEPS)
    assert r.exit_code == 0, r.output
    with env.session() as s:
        created = [
            a.target
            for a in s.scalars(
                select(AuditEntry)
                .where(
                    AuditEntry.action.in_(["connection.create", "connection.update"]),
                    AuditEntry.method == "apply",
                )
                .order_by(AuditEntry.seq)
            )
        ]
    assert created == ["acme/ledger", "acme/invoicing"]


def test_removing_a_dependency_while_its_dependent_stays_is_refused(env: Env, sim) -> None:
    deps_env(env, sim.base_url("stripe"))
    both = [connection("invoicing", "INVOICING_KEY"), connection("ledger", "LEDGER_KEY")]
    write(env.cwd / "manifests", organization("acme", both))
    assert env.run("apply", "--catalog", DEPS).exit_code == 0
    write(env.cwd / "manifests", organization("acme", [both[0]]))
    before = counts(env)
    r = env.run("apply", "--catalog", DEPS)
    assert r.exit_code == 1
    assert "acme/ledger" in r.output and "invoicing" in r.output
    assert counts(env) == before
    # removing both tears the dependent down first
    write(env.cwd / "manifests", organization("acme", [], allow_empty=True))
    r = env.run("apply", "--catalog", DEPS)
    assert r.exit_code == 0, r.output
    with env.session() as s:
        deleted = [
            a.target
            for a in s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "connection.delete")
                .order_by(AuditEntry.seq)
            )
        ]
    assert deleted == ["acme/invoicing", "acme/ledger"]


def test_a_cycle_in_the_catalog_is_an_error(env: Env, tmp_path: Path) -> None:
    cat = tmp_path / "cat"
    cat.mkdir()
    for name in ("ledger", "invoicing"):
        text = (Path(DEPS) / f"{name}.yaml").read_text()
        if name == "ledger":
            text = text.replace("depends_on: []", "depends_on: [invoicing]")
        (cat / f"{name}.yaml").write_text(text)
    r = env.run("validate", "--catalog", str(cat))
    assert r.exit_code == 1
    assert "cycle" in r.output


# -- ownership -----------------------------------------------------------------------------


def insert_unmanaged(env: Env, org: str, provider: str, user: str) -> None:
    """As the SaaS's own UI would: plain SQL naming only the columns SPEC section 3 lists."""
    with env.session() as s, s.begin():
        s.execute(
            text(
                "INSERT INTO integration_instances (organization, provider, status) "
                "VALUES (:o, :p, 'active')"
            ),
            {"o": org, "p": provider},
        )
        iid = s.scalar(
            text("SELECT id FROM integration_instances WHERE organization = :o AND provider = :p"),
            {"o": org, "p": provider},
        )
        s.execute(
            text(
                "INSERT INTO integration_connections (instance_id, user_email, status) "
                "VALUES (:i, :u, 'connected')"
            ),
            {"i": iid, "u": user},
        )


def test_unmanaged_connection_is_listed_and_survives(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    insert_unmanaged(env, "acme", "geoapify_ui", "someone@acme.example")
    insert_unmanaged(env, "globex", "quo", "clerk@globex.example")
    r = env.run("plan")
    assert "unmanaged" in r.stdout or "no manifest manages" in r.stdout
    assert "globex/quo" in r.stdout
    assert "No changes." in r.stdout
    r = env.run("apply")
    assert r.exit_code == 0
    with env.session() as s:
        assert (
            s.scalar(
                select(Instance).where(
                    Instance.organization == "globex", Instance.provider == "quo"
                )
            )
            is not None
        )


def test_existing_unmanaged_connection_needs_adopt(env: Env) -> None:
    assert env.run("db", "upgrade").exit_code == 0
    insert_unmanaged(env, "globex", "stripe", "admin@globex.example")
    r = env.run("plan")
    assert r.exit_code == 1
    assert "adopt: true" in r.output
    path = env.cwd / "manifests" / "globex.yaml"
    path.write_text(
        path.read_text().replace(
            "    - provider: stripe\n", "    - provider: stripe\n      adopt: true\n"
        )
    )
    r = env.run("plan", "--format", "json")
    assert r.exit_code == 0, r.output
    actions = {c["address"]: c["action"] for c in json.loads(r.stdout)["changes"]}
    assert actions["globex/stripe"] == "adopt"
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    with env.session() as s:
        conn = s.scalar(
            select(Connection)
            .join(Instance)
            .where(Instance.organization == "globex", Instance.provider == "stripe")
        )
        assert conn is not None and conn.managed_by == "manifest"
    assert "No changes." in env.run("plan").stdout


# -- deletion safety -----------------------------------------------------------------------


def test_max_deletions_refuses_before_writing(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    (env.cwd / "manifests" / "globex.yaml").write_text(
        (env.cwd / "manifests" / "globex.yaml").read_text().split("  connections:")[0]
        + "  allowEmpty: true\n  connections: []\n"
    )
    before = counts(env)
    r = env.run("apply", "--max-deletions", "1")
    assert r.exit_code == 1
    assert "max-deletions" in r.output
    assert counts(env) == before


def test_empty_manifest_without_allow_empty_deletes_nothing(env: Env) -> None:
    assert env.run("apply").exit_code == 0
    (env.cwd / "manifests" / "globex.yaml").write_text(
        (env.cwd / "manifests" / "globex.yaml").read_text().split("  connections:")[0]
        + "  connections: []\n"
    )
    r = env.run("plan", "--detailed-exitcode")
    assert r.exit_code == 0
    assert "allowEmpty" in r.stdout
    before = counts(env)
    assert env.run("apply").exit_code == 0
    assert counts(env) == before


def test_prevent_destroy_and_orphan(env: Env) -> None:
    path = env.cwd / "manifests" / "globex.yaml"
    text = path.read_text()
    path.write_text(
        text.replace(
            "    - provider: stripe\n", "    - provider: stripe\n      preventDestroy: true\n"
        ).replace(
            "    - provider: postmark\n", "    - provider: postmark\n      deletionPolicy: orphan\n"
        )
    )
    assert env.run("apply").exit_code == 0
    path.write_text(text.split("  connections:")[0] + "  allowEmpty: true\n  connections: []\n")
    r = env.run("plan")
    assert r.exit_code == 1
    assert "preventDestroy" in r.output and "globex/stripe" in r.output
    # keep stripe, drop postmark: it is orphaned, its data stays
    path.write_text(text)
    assert env.run("apply").exit_code == 0  # preventDestroy off again
    path.write_text(
        text.replace(
            "    - provider: postmark\n", "    - provider: postmark\n      deletionPolicy: orphan\n"
        )
    )
    assert env.run("apply").exit_code == 0
    path.write_text(text.split("    - provider: postmark")[0])
    r = env.run("plan", "--format", "json")
    actions = {c["address"]: c["action"] for c in json.loads(r.stdout)["changes"]}
    assert actions == {"globex/postmark": "orphan"}
    assert env.run("apply").exit_code == 0
    with env.session() as s:
        inst = s.scalar(
            select(Instance).where(
                Instance.organization == "globex", Instance.provider == "postmark"
            )
        )
        assert inst is not None and inst.managed_by == "orphaned"
        assert (
            s.scalar(
                select(func.count())
                .select_from(Credential)
                .join(Connection)
                .where(Connection.instance_id == inst.id)
            )
            == 1
        )


# -- targeting and context -----------------------------------------------------------------


def test_org_targeting(env: Env) -> None:
    r = env.run("plan", "--org", "globex", "--format", "json")
    orgs = {c["organization"] for c in json.loads(r.stdout)["changes"]}
    assert orgs == {"globex"}
    r = env.run("apply", "--exclude-org", "globex")
    assert r.exit_code == 0
    with env.session() as s:
        assert set(s.scalars(select(Instance.organization))) == {"acme"}


def test_unhealthy_unchanged_connection_is_shown_with_since(env: Env, sim) -> None:
    assert env.run("apply").exit_code == 0
    sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    assert env.run("health").exit_code == 1
    r = env.run("plan")
    assert "globex/stripe is unhealthy" in r.stdout and "failing since" in r.stdout
    md = env.run("plan", "--format", "markdown").stdout
    assert "globex/stripe is unhealthy" in md


def test_provider_targeting(env: Env) -> None:
    r = env.run("plan", "--provider", "stripe", "--format", "json")
    assert {c["provider"] for c in json.loads(r.stdout)["changes"]} == {"stripe"}
    assert env.run("apply", "--provider", "stripe").exit_code == 0
    with env.session() as s:
        assert set(s.scalars(select(Instance.provider))) == {"stripe"}
    r = env.run("status", "--provider", "stripe", "--format", "json")
    assert {x["provider"] for x in json.loads(r.stdout)} == {"stripe"}


def test_validate_needs_no_secrets_but_names_unset_variables(env: Env) -> None:
    del env.vars["ACME_QUO_KEY"]
    r = env.run("validate")
    assert r.exit_code == 0
    assert "ACME_QUO_KEY" in r.output
    r = env.run("validate", "--require-env")
    assert r.exit_code == 1
    assert "ACME_QUO_KEY" in r.output
