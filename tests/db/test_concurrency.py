"""Applies of different organizations write at the same time on PostgreSQL; a key rotation
waits for the writes in progress.

Two worker processes each apply one organization. A barrier (tests/faults.py) holds each
inside its write transaction, just before it inserts its first connection, until both have
arrived. If one waited for the other's writes, the second would arrive only after the first
committed; so the trace shows overlap when both arrived before either committed. No timing
assertion: the barrier makes the order of events the evidence.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select, text

from reconciler.crypto import generate_entry
from reconciler.db.locking import STATE_LOCK
from reconciler.db.schema import Credential
from tests.conftest import Env
from tests.db import FLEET_SECRETS, finish, invariants, spawn, write_fleet


def read_trace(path: Path) -> dict[str, list[tuple[str, float]]]:
    events: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        pid, point, when = line.split()
        events[pid].append((point, float(when)))
    return events


@pytest.mark.databases("postgresql")
def test_write_phases_of_two_organizations_overlap(env: Env, tmp_path: Path) -> None:
    env.vars.update(FLEET_SECRETS)
    write_fleet(env.cwd / "fleet", ["org-a", "org-b"])
    assert env.run("db", "upgrade").exit_code == 0
    barrier, trace = tmp_path / "barrier", tmp_path / "trace"
    barrier.mkdir()
    faults = {
        "RECONCILER_TEST_BARRIER": f"sql=INSERT INTO integration_connections:{barrier}:2",
        "RECONCILER_TEST_TRACE": str(trace),
    }
    workers = [spawn(env, "apply", "fleet", "--org", org, **faults) for org in ("org-a", "org-b")]
    results = [finish(w) for w in workers]
    assert [code for code, _ in results] == [0, 0], results

    events = read_trace(trace)
    arrived = {pid: t for pid, evs in events.items() for p, t in evs if p == "barrier-arrived"}
    assert len(arrived) == 2, events  # both workers reached their write phase
    for pid, at in arrived.items():
        committed = min(t for p, t in events[pid] if p == "commit" and t > at)
        # the other worker was inside its write transaction before this one committed
        assert max(arrived.values()) < committed, events

    assert env.run("plan", "fleet", "--detailed-exitcode").exit_code == 0
    assert env.run("audit", "verify").exit_code == 0
    with env.session() as s:
        invariants(s)


def waiting_for_the_state_lock(env: Env) -> bool:
    """Whether a backend waits for the exclusive state lock (a key rotation, blocked)."""
    with env.session() as s:
        return bool(
            s.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                    "AND classid = :ns AND objid = :key"
                ),
                {"ns": STATE_LOCK[0], "key": STATE_LOCK[1]},
            )
        )


@pytest.mark.databases("postgresql")
def test_key_rotation_waits_for_an_apply_in_its_write_phase(env: Env, tmp_path: Path) -> None:
    env.vars.update(FLEET_SECRETS)
    write_fleet(env.cwd / "fleet", ["org-a"])
    assert env.run("apply", "fleet").exit_code == 0
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    # the apply replaces org-a's Stripe key under k1 and stops inside its write transaction
    apply = spawn(
        env,
        "apply",
        "fleet",
        FLEET_STRIPE_KEY="sk_test_fleet_rotated",
        RECONCILER_TEST_BARRIER=f"locked:{barrier}:2",
    )
    deadline = time.monotonic() + 30
    while not any(barrier.iterdir()):
        assert apply.poll() is None and time.monotonic() < deadline, finish(apply)
        time.sleep(0.05)
    both = f"{generate_entry('k2')},{env.vars['RECONCILER_ENCRYPTION_KEYS']}"
    rotate = spawn(env, "keys", "rotate", RECONCILER_ENCRYPTION_KEYS=both)
    while not waiting_for_the_state_lock(env):
        assert rotate.poll() is None, finish(rotate)  # it must not finish while apply writes
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (barrier / "test").touch()  # let the apply go on
    assert finish(apply)[0] == 0
    code, out = finish(rotate)
    assert code == 0, out
    with env.session() as s:
        # the apply's new credential was rotated too: the rotation read it after its commit
        assert set(s.scalars(select(Credential.key_id))) == {"k2"}
    assert env.run("audit", "verify", RECONCILER_ENCRYPTION_KEYS=both).exit_code == 0
