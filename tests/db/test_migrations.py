"""Migrations: the shipped revisions build exactly the models' schema; an older schema is
refused until `reconciler db upgrade`, which keeps every row and the audit chain; a newer one
is refused outright."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from reconciler.db.schema import Base
from reconciler.db.schema_version import (
    FIRST,
    HEAD,
    MIGRATIONS,
    REVISIONS,
    VERSION_TABLE,
    upgrade_schema,
)
from reconciler.simulator import Simulator
from tests.conftest import CANARIES, Env
from tests.db import finish, spawn

REV1_TABLES = (
    "integration_instances",
    "integration_connections",
    "integration_credentials",
    "integration_resources",
    "integration_health",
    "integration_audit_log",
    "reconciler_state",
)


@pytest.fixture
def engine(env: Env) -> Iterator[Engine]:
    url = env.vars["RECONCILER_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    e = create_engine(url)
    yield e
    e.dispose()


def alembic(engine: Engine, verb: str, target: str) -> None:
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        getattr(command, verb)(cfg, target)


def rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the revision-1 tables, every column, ids and ciphertexts included."""
    with engine.connect() as c:
        return {
            t: sorted(tuple(r) for r in c.execute(text(f"SELECT * FROM {t} ORDER BY 1")))
            for t in REV1_TABLES
        }


def first_columns(
    after: dict[str, list[tuple[object, ...]]], before: dict[str, list[tuple[object, ...]]]
) -> dict[str, list[tuple[object, ...]]]:
    """Rows cut to the columns ``before`` had: later revisions add columns at the end of a row
    (0004: the resources' provider-side columns)."""
    return {t: [r[: len(before[t][0])] if before[t] else r for r in after[t]] for t in after}


def assert_the_provider_objects_are_recovered(env: Env, sim: Simulator) -> None:
    """A downgrade below 0004 forgets the ids of the objects made at the providers; after the
    upgrade the plan finds each by its identity, as after an apply interrupted between the
    provider's answer and the commit: the Stripe endpoint's create is sent again (Stripe replays
    the answer, signing secret included), Postmark's objects (no signing secret) are recorded as
    ours, and Quo's webhooks, whose create answer (and so which secret is theirs) cannot be
    had again, are replaced with a new signing secret. Then nothing is left to do, and each
    provider holds each object once."""
    r = env.run("plan", "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [(c["address"], [x["action"] for x in c["remote"]]) for c in doc["changes"]] == [
        ("acme/postmark/sender_emails/billing@acme.example", ["adopt"]),
        ("acme/postmark/sender_emails/support@acme.example", ["adopt"]),
        (
            "acme/postmark/webhooks/broadcast:https://acme.example/hooks/postmark/broadcast",
            ["adopt"],
        ),
        ("acme/postmark/webhooks/outbound:https://acme.example/hooks/postmark", ["adopt"]),
        ("acme/quo/webhooks/calls:https://acme.example/hooks/quo/calls", ["replace"]),
        ("acme/quo/webhooks/messages:https://acme.example/hooks/quo/messages", ["replace"]),
        ("acme/stripe/webhook_endpoints/https://acme.example/hooks/stripe", ["create"]),
    ]
    assert env.run("apply").exit_code == 0
    r = env.run("plan", "--detailed-exitcode")
    assert r.exit_code == 0 and "No changes." in r.output, r.output
    assert len(sim.objects("stripe", "webhook_endpoints", CANARIES["ACME_STRIPE_SECRET_KEY"])) == 1
    assert len(sim.objects("postmark", "webhooks", CANARIES["ACME_POSTMARK_TOKEN"])) == 2
    account = CANARIES["ACME_POSTMARK_ACCOUNT_TOKEN"]
    assert len(sim.objects("postmark", "senders", account)) == 2
    assert len(sim.objects("quo", "webhooks", CANARIES["ACME_QUO_KEY"])) == 2


def test_revision_list_matches_the_migrations_folder() -> None:
    script = ScriptDirectory(str(MIGRATIONS))
    walked = [s.revision for s in script.walk_revisions()][::-1]
    assert tuple(walked) == REVISIONS
    assert script.get_current_head() == HEAD


def test_migrations_build_exactly_the_models(engine: Engine) -> None:
    upgrade_schema(engine, FIRST)
    upgrade_schema(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        assert compare_metadata(ctx, Base.metadata) == []
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == HEAD


@pytest.mark.parametrize("versioned", [True, False], ids=["revision-1", "before-migrations"])
def test_upgrade_from_the_first_schema_keeps_every_row(
    env: Env, engine: Engine, sim: Simulator, versioned: bool
) -> None:
    # real data written by the tool: instances, connections, credentials, resources, health
    # rows and an audit chain, then a teardown
    assert env.run("apply").exit_code == 0
    assert env.run("health").exit_code == 0
    path = env.cwd / "manifests" / "globex.yaml"
    path.write_text(path.read_text().split("    - provider: postmark")[0])
    assert env.run("apply").exit_code == 0
    # back to the first released schema (revision 1), or to a database made before
    # migrations existed (the same tables, no version table)
    alembic(engine, "downgrade", FIRST)
    if not versioned:
        with engine.begin() as c:
            c.execute(text(f"DROP TABLE {VERSION_TABLE}"))
    assert not inspect(engine).has_table("reconciler_locks")
    before = rows(engine)
    assert all(before[t] for t in REV1_TABLES), "every table has rows"

    for args in (("plan",), ("apply",), ("status",), ("audit", "verify"), ("health",)):
        r = env.run(*args)
        assert r.exit_code == 1, (args, r.output)
        assert "older than this reconciler" in r.output
        assert "Run `reconciler db upgrade`" in r.output
    assert rows(engine) == before

    r = env.run("db", "upgrade")
    assert r.exit_code == 0, r.output
    assert first_columns(rows(engine), before) == before
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == HEAD
    r = env.run("audit", "verify")
    assert r.exit_code == 0, r.output
    assert_the_provider_objects_are_recovered(env, sim)
    # and the tool carries on writing (ids continue, the chain grows)
    env.vars["GLOBEX_STRIPE_SECRET_KEY"] = "sk_test_after_upgrade"
    assert env.run("apply").exit_code == 0
    assert env.run("audit", "verify").exit_code == 0
    assert env.run("db", "upgrade").exit_code == 0  # idempotent


def test_a_newer_schema_is_refused_and_left_alone(env: Env, engine: Engine) -> None:
    assert env.run("apply").exit_code == 0
    with engine.begin() as c:
        c.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
    before = rows(engine)
    for args in (("plan",), ("apply",), ("db", "upgrade"), ("audit",)):
        r = env.run(*args)
        assert r.exit_code == 1, (args, r.output)
        assert "revision 0099, newer than this reconciler" in r.output
        assert "Upgrade reconciler" in r.output
    assert rows(engine) == before


def test_plan_on_an_empty_database_writes_nothing(env: Env, engine: Engine) -> None:
    r = env.run("plan", "--detailed-exitcode")
    assert r.exit_code == 2, r.output
    assert inspect(engine).get_table_names() == []


def test_db_upgrade_creates_the_schema(env: Env, engine: Engine) -> None:
    r = env.run("db", "upgrade")
    assert r.exit_code == 0, r.output
    later = {
        "reconciler_locks",
        "integration_incidents",
        "reconciler_notifications",
        "reconciler_pending_creates",
    }
    assert set(REV1_TABLES) | later | {"reconciler_runs", VERSION_TABLE} == set(
        inspect(engine).get_table_names()
    )
    assert env.run("audit", "verify").exit_code == 0


@pytest.mark.databases("postgresql")
def test_postgresql_audit_rows_are_append_only(env: Env, engine: Engine) -> None:
    assert env.run("apply").exit_code == 0
    for sql in (
        "UPDATE integration_audit_log SET actor = 'mallory'",
        "DELETE FROM integration_audit_log",
        "TRUNCATE integration_audit_log",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
            c.execute(text(sql))
    assert env.run("audit", "verify").exit_code == 0


def test_a_killed_upgrade_leaves_the_old_schema(env: Env, engine: Engine, sim: Simulator) -> None:
    assert env.run("apply").exit_code == 0
    alembic(engine, "downgrade", FIRST)
    before = rows(engine)
    # killed after revision 2's DDL ran, before the version row moved: all of it is undone
    code, out = finish(
        spawn(env, "db", "upgrade", RECONCILER_TEST_KILL_POINT=f"sql=UPDATE {VERSION_TABLE}:1")
    )
    assert code == -9, out
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == FIRST
    assert not inspect(engine).has_table("reconciler_locks")
    assert rows(engine) == before
    assert env.run("db", "upgrade").exit_code == 0
    assert first_columns(rows(engine), before) == before
    assert_the_provider_objects_are_recovered(env, sim)
