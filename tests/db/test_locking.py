"""Per-organization locks as an operator meets them: a second apply of the same organization
waits up to --lock-timeout, then exits 1 naming the organization, who holds the lock and since
when; other organizations do not wait (PostgreSQL); a killed holder leaves no lock."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from reconciler.db.locking import lock_organization
from reconciler.db.schema import LockHolder
from reconciler.simulator import Simulator
from tests.conftest import Env
from tests.db import (
    FLEET_SECRETS,
    finish,
    holder_rows,
    invariants,
    is_postgresql,
    spawn,
    spawn_at_barrier,
    write_fleet,
)


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[Simulator]:
    with Simulator(latency_ms=1500) as s:
        yield s


def test_second_apply_waits_then_names_the_holder(env: Env) -> None:
    assert env.run("db", "upgrade").exit_code == 0
    with env.session() as s, s.begin():
        lock_organization(s, "acme", timeout=5, holder="alice on laptop pid 4242")
        started = time.monotonic()
        r = env.run("apply", "--lock-timeout", "1")
        waited = time.monotonic() - started
    assert r.exit_code == 1, r.output
    assert "organization 'acme' is locked" in r.output
    assert "alice on laptop pid 4242" in r.output
    assert f"since {datetime.now(UTC).year}-" in r.output
    assert "waited 1 s (--lock-timeout)" in r.output
    assert waited >= 1.0
    # released: the same apply goes through, and no holder information is left behind
    r = env.run("apply", "--lock-timeout", "1")
    assert r.exit_code == 0, r.output
    with env.session() as s:
        assert holder_rows(s) == []


@pytest.mark.databases("postgresql")  # SQLite has one write lock for the whole file
def test_other_organizations_do_not_wait_on_postgresql(env: Env) -> None:
    assert env.run("db", "upgrade").exit_code == 0
    with env.session() as s, s.begin():
        lock_organization(s, "acme", timeout=5, holder="alice")
        r = env.run("apply", "--org", "globex", "--lock-timeout", "1")
        assert r.exit_code == 0, r.output
        r = env.run("apply", "--org", "acme", "--lock-timeout", "0.2")
        assert r.exit_code == 1 and "held by alice" in r.output, r.output


def test_a_killed_holder_leaves_no_lock(env: Env) -> None:
    assert env.run("db", "upgrade").exit_code == 0
    if not is_postgresql(env):
        # information left by a long-dead process: never named, never waited on
        dead = subprocess.Popen(["true"])
        dead.wait()
        with env.session() as s, s.begin():
            s.add(
                LockHolder(
                    token="0" * 32,
                    organization="acme",
                    holder="ghost",
                    host=socket.gethostname(),
                    pid=dead.pid,
                    since=datetime.now(UTC) - timedelta(days=1),
                )
            )
    code, out = finish(spawn(env, "apply", RECONCILER_TEST_KILL_POINT="locked:1"))
    assert code == -9, out
    started = time.monotonic()
    r = env.run("apply", "--lock-timeout", "2")
    assert r.exit_code == 0, r.output
    assert time.monotonic() - started < 10
    with env.session() as s:
        assert holder_rows(s) == []
        invariants(s)
    assert env.run("plan", "--detailed-exitcode").exit_code == 0


@pytest.mark.databases("sqlite")
def test_sqlite_names_no_dead_process(env: Env) -> None:
    assert env.run("db", "upgrade").exit_code == 0
    with env.session() as s, s.begin():
        s.add(
            LockHolder(
                token="1" * 32,
                organization="acme",
                holder="ghost",
                host=socket.gethostname(),
                pid=2**22 + 7,  # above Linux's pid_max default: no such process
                since=datetime.now(UTC) - timedelta(hours=1),
            )
        )
    with env.session() as s, s.begin():
        s.execute(text("UPDATE reconciler_state SET serial = serial"))  # a writer not announced
        r = env.run("apply", "--lock-timeout", "0.3")
    assert r.exit_code == 1
    assert "ghost" not in r.output and "holder unknown" in r.output, r.output


def _timed(procs: list[subprocess.Popen[str]]) -> tuple[float, list[tuple[int, str]]]:
    started = time.monotonic()
    results = [finish(p) for p in procs]
    return time.monotonic() - started, results


@pytest.mark.databases("postgresql")
def test_two_applies_of_one_organization_one_wins_cleanly(env: Env, slow_sim: Simulator) -> None:
    write_fleet(env.cwd / "manifests", ["org-a"])
    env.vars.update({**FLEET_SECRETS, **slow_sim.env()})
    assert env.run("db", "upgrade").exit_code == 0
    _, results = _timed([spawn(env, "apply"), spawn(env, "apply")])
    codes = sorted(c for c, _ in results)
    assert codes == [0, 1], results
    loser = next(out for c, out in results if c == 1)
    assert "org-a" in loser
    assert "changed in the database while this apply ran" in loser or "is locked" in loser
    with env.session() as s:
        invariants(s)
    assert env.run("plan", "--detailed-exitcode").exit_code == 0
    assert env.run("audit", "verify").exit_code == 0


def test_the_lock_is_held_from_the_upserts_to_the_teardown(env: Env, tmp_path: Path) -> None:
    """An organization whose changes create or update and also delete is written in two
    transactions (deletions after the rest); its lock is held across both. A second apply
    started between them waits --lock-timeout and exits 1 naming the holder."""
    assert env.run("apply").exit_code == 0
    manifest = env.cwd / "manifests" / "acme.yaml"
    text = manifest.read_text()
    mapbox = (
        "    - provider: mapbox\n      owner: ops@acme.example\n      active: false\n"
        '      credentials: {api_key: "${ACME_MAPBOX_TOKEN}"}\n'
    )
    assert mapbox in text
    text = text.replace(mapbox, "").replace(
        '{number: "+15555550100", label: Support', '{number: "+15555550100", label: Help'
    )
    manifest.write_text(text)
    # the first commit of this apply of acme is its upserts; its teardown follows
    first, release = spawn_at_barrier(env, tmp_path, "apply", "--org", "acme")
    code2, out2 = finish(spawn(env, "apply", "--org", "acme", "--lock-timeout", "2"))
    held = first.poll() is None
    release.touch()
    code1, out1 = finish(first)
    assert held
    assert code1 == 0, out1
    assert "acme/mapbox: deleted" in out1
    assert code2 == 1, out2
    assert "organization 'acme' is locked" in out2 and "held by ci-bot on" in out2, out2
    with env.session() as s:
        invariants(s)
    assert env.run("plan", "--detailed-exitcode").exit_code == 0
    assert env.run("audit", "verify").exit_code == 0
