"""SQLite as a fleet writes it. Organizations are held apart: an apply holding one across its
provider calls keeps out every other writer of that organization, and of nothing else, and a
key rotation (every organization) still waits for it. The database runs in WAL mode."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reconciler.core.errors import LockError
from reconciler.db.engine import ensure_schema, make_engine
from reconciler.db.locking import hold_organization, lock_all_organizations, organizations_apart
from reconciler.simulator import Simulator
from tests.conftest import Env
from tests.db import finish, invariants, spawn_at_barrier


def test_other_organizations_do_not_wait_for_one_held_across_provider_calls(
    env: Env, tmp_path: Path
) -> None:
    """An apply of acme stands between its pending commit and its provider calls, holding
    acme: an apply of globex goes through meanwhile; a second apply of acme waits and exits 1
    naming the holder; once released, the first finishes."""
    with Simulator() as sim:
        env.vars.update(sim.env())
        assert env.run("db", "upgrade").exit_code == 0
        first, release = spawn_at_barrier(env, tmp_path, "apply", "--org", "acme")
        other = env.run("apply", "--org", "globex", "--lock-timeout", "5")
        same = env.run("apply", "--org", "acme", "--lock-timeout", "0.5")
        held = first.poll() is None
        release.touch()
        code, out = finish(first)
    assert held
    assert other.exit_code == 0, other.output
    assert same.exit_code == 1, same.output
    assert "organization 'acme' is locked" in same.output
    assert code == 0, out
    assert env.run("plan", "--refresh=false", "--detailed-exitcode").exit_code == 0
    with env.session() as s:
        invariants(s)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = make_engine(f"sqlite:///{tmp_path / 'gates.db'}")
    ensure_schema(e)
    yield e
    e.dispose()


def holding(engine: Engine, organization: str) -> tuple[threading.Event, threading.Thread]:
    """A thread holding ``organization`` until the returned event is set."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with hold_organization(engine, organization, timeout=5, holder="a thread"):
            taken.set()
            done.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    assert taken.wait(10)
    return done, t


def test_threads_hold_different_organizations_at_once_and_one_organization_alone(
    engine: Engine,
) -> None:
    assert organizations_apart(engine)
    release, t = holding(engine, "acme")
    try:
        with hold_organization(engine, "globex", timeout=1, holder="me"):
            pass  # a second organization: taken at once
        with (
            pytest.raises(LockError, match="organization 'acme' is locked"),
            hold_organization(engine, "acme", timeout=0.3, holder="me"),
        ):
            pass
    finally:
        release.set()
        t.join()
    with hold_organization(engine, "acme", timeout=1, holder="me"):
        pass


def test_a_key_rotation_waits_for_every_held_organization(engine: Engine) -> None:
    release, t = holding(engine, "acme")
    try:
        with Session(engine) as s, s.begin(), pytest.raises(LockError, match="apply is writing"):
            lock_all_organizations(s, timeout=0.3, holder="rotation")
    finally:
        release.set()
        t.join()
    with Session(engine) as s, s.begin():
        lock_all_organizations(s, timeout=1, holder="rotation")


def test_an_in_memory_database_writes_one_organization_at_a_time() -> None:
    e = make_engine("sqlite://")
    assert not organizations_apart(e)
    e.dispose()


@pytest.mark.databases("sqlite")
def test_sqlite_runs_in_wal_mode_and_a_busy_database_is_used_as_it_is(env: Env) -> None:
    """The first command puts the database in WAL mode. A database another process holds
    when a command starts stays in its mode for that command, which still works; a later
    command switches it."""
    path = env.vars["RECONCILER_DATABASE_URL"].removeprefix("sqlite:///")
    assert env.run("db", "upgrade").exit_code == 0
    other = sqlite3.connect(path, isolation_level=None)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
        other.execute("BEGIN IMMEDIATE")  # another writer holds the database
        r = env.run("status", "--format", "json")
        assert r.exit_code == 0, r.output
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        other.execute("ROLLBACK")
    finally:
        other.close()
    r = env.run("apply", "--org", "acme")
    assert r.exit_code == 0, r.output
    with sqlite3.connect(path) as again:
        assert again.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
