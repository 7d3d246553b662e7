"""Many organizations: sharded workers split a fleet, and plan reads in constant queries."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, create_engine, event, func, select, text

from reconciler.db.schema import AuditEntry
from tests.conftest import Env
from tests.db import FLEET_SECRETS, finish, invariants, snapshot, spawn, write_fleet


def fleet_names(n: int) -> list[str]:
    return [f"org-{i:03d}" for i in range(n)]


def drop_everything(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as c:
        c.execute(text("DROP SCHEMA public CASCADE"))
        c.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.mark.databases("postgresql")
def test_four_sharded_workers_reach_the_state_of_one(env: Env) -> None:
    names = fleet_names(20)
    write_fleet(env.cwd / "fleet", names)
    env.vars.update(FLEET_SECRETS)
    # four workers on a database without a schema: they also race to create it (two writer
    # threads each: four processes with the default's would take most of the server's 100
    # connections while other tests run beside this one)
    workers = [
        spawn(env, "apply", "fleet", "--shard", f"{k}/4", "--parallelism", "2") for k in range(1, 5)
    ]
    results = [finish(w) for w in workers]
    assert [c for c, _ in results] == [0, 0, 0, 0], results
    with env.session() as s:
        per_org = dict(
            s.execute(
                select(AuditEntry.organization, func.count())
                .where(AuditEntry.action == "connection.create")
                .group_by(AuditEntry.organization)
            ).all()
        )
        assert per_org == {n: 2 for n in names}  # every organization, each by one worker
        invariants(s)
        sharded = snapshot(s)
    assert env.run("plan", "fleet", "--detailed-exitcode").exit_code == 0
    assert env.run("audit", "verify").exit_code == 0
    env.close()

    drop_everything(env.vars["RECONCILER_DATABASE_URL"])
    code, out = finish(spawn(env, "apply", "fleet"))
    assert code == 0, out
    with env.session() as s:
        assert snapshot(s) == sharded


def count_statements(env: Env, *args: str) -> int:
    count = 0

    def on_statement(*_: object) -> None:
        nonlocal count
        count += 1

    event.listen(Engine, "before_cursor_execute", on_statement)
    try:
        r = env.run(*args)
    finally:
        event.remove(Engine, "before_cursor_execute", on_statement)
    assert r.exit_code == 0 and "No changes." in r.output, r.output
    return count


def test_plan_reads_in_constant_queries(env: Env) -> None:
    """The statements of a plan do not grow with the fleet: 3 organizations and ten times
    as many read in the same number. (A query per organization or per row shows at these
    sizes as well; 200 organizations cost most of a minute, waiting on the 25 requests/s of
    the fleet's one Stripe key.)"""
    env.vars.update(FLEET_SECRETS)
    names = fleet_names(30)
    write_fleet(env.cwd / "fleet", names[:3], postmark=False)
    assert env.run("apply", "fleet", "--parallelism", "50").exit_code == 0
    small = count_statements(env, "plan", "fleet")
    write_fleet(env.cwd / "fleet", names, postmark=False)
    assert env.run("apply", "fleet", "--parallelism", "50").exit_code == 0
    large = count_statements(env, "plan", "fleet")
    assert small == large
    assert large < 20
