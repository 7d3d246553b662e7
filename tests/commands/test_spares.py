"""``apply --workers``: the workers start as soon as the plan's database side has changes
enough for them, while the provider side is still read, not after the plan; those the final
plan does not need exit without a job, having written nothing."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

from reconciler.commands.spares import Spares
from tests.commands.test_worker_processes import fleet
from tests.conftest import Env


def _plan(*organizations: str) -> Any:
    return SimpleNamespace(changes=[SimpleNamespace(organization=o) for o in organizations])


def test_workers_start_before_the_plan_is_done(env: Env) -> None:
    fleet(env)
    r = env.run("--verbose", "apply", "fleet", "--workers", "2")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    started = next(i for i, line in enumerate(lines) if "worker(s) while the plan is made" in line)
    planned = next(i for i, line in enumerate(lines) if "reconciler.plan: planned " in line)
    split = next(i for i, line in enumerate(lines) if "apply in 2 worker(s)" in line)
    assert started < planned < split
    assert "Apply complete: 32 created." in r.output  # 8 organizations, 4 objects each


def test_a_plan_without_changes_starts_no_worker(env: Env) -> None:
    fleet(env)
    assert env.run("apply", "fleet", "--workers", "2").exit_code == 0
    again = env.run("--verbose", "apply", "fleet", "--workers", "2")
    assert again.exit_code == 0, again.output
    assert "worker(s) while the plan is made" not in again.output
    spares = Spares(2, 10, os.environ)
    spares.on_changes(_plan())
    assert spares.take() is None
    spares.close()


def test_a_worker_the_apply_did_not_need_exits_on_its_own(db_url: str) -> None:
    spares = Spares(None, 10, {**os.environ, "RECONCILER_DATABASE_URL": db_url})
    spares.on_changes(_plan("a", "b"))  # --workers unset: one process for two organizations
    assert spares.take() is None
    spares = Spares(3, 10, {**os.environ, "RECONCILER_DATABASE_URL": db_url})
    spares.on_changes(_plan("a", "b", "c"))
    ready = spares.take()
    assert ready is not None and [c.index for c in ready.children] == [1, 2]
    assert (ready.turn is not None) == db_url.startswith("sqlite")
    spares.close()  # no job was given: each one's stdin closes
    assert [c.proc.returncode for c in ready.children] == [1, 1]  # it exited, not killed
