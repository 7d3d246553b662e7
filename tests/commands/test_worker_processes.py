"""``apply --workers N`` and ``health --workers N``: the organizations split among processes,
one combined output, exit code and run record; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from reconciler.commands import spares as spares_module
from reconciler.commands import workers as workers_module
from reconciler.commands.inputs import Selection, shard_of, worker_of
from reconciler.commands.run import make_plan
from reconciler.db.locking import NAMESPACE, organization_key
from reconciler.db.schema import Run
from reconciler.simulator import Simulator
from tests.conftest import Env, assert_no_canary
from tests.db import FLEET_SECRETS, finish, invariants, snapshot, spawn, write_fleet

NAMES = [f"org-{i:02d}" for i in range(8)]


def fleet(env: Env, names: list[str] = NAMES) -> None:
    write_fleet(env.cwd / "fleet", names)
    env.vars.update(FLEET_SECRETS)


def normalized(output: str) -> tuple[list[str], list[str]]:
    """The output's lines in order, the check lines (whose order is the order the answers
    came back, in one process too) apart and sorted; response times and provider ids out."""
    lines = [re.sub(r"\(\d+ ms\)", "(N ms)", line) for line in output.splitlines()]
    lines = [re.sub(r"\b(we|wh|sndr|PN)_?\w*\d\w*\b", "ID", line) for line in lines]
    checks = sorted(line for line in lines if line.startswith("  check "))
    return [line for line in lines if not line.startswith("  check ")], checks


def no_children(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("no worker process was expected")

    monkeypatch.setattr(workers_module, "start_child", refuse)
    monkeypatch.setattr(spares_module, "start_child", refuse)


def test_the_fleet_is_split_between_both_workers() -> None:
    assert {worker_of(n, 2) for n in NAMES} == {0, 1}
    # within --shard K/N every organization has the same hash modulo N: still split in two
    many = [f"org-{i:03d}" for i in range(200)]
    for k, n in [(1, 2), (2, 2), (3, 4)]:
        in_shard = [o for o in many if shard_of(o, n) == k]
        assert {worker_of(o, 2, (k, n)) for o in in_shard} == {0, 1}, (k, n)


def test_default_and_bounds_of_the_number_of_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers_module, "available_cpus", lambda: 2)
    n = workers_module.number_of_workers
    assert n(None, 2, 10) == 1  # a small fleet pays no process start-up
    assert n(None, 199, 10) == 1
    assert n(None, 200, 10) == 2
    assert n(None, 5000, 10) == 2  # no more than the CPUs
    assert n(4, 3, 10) == 3  # no more than the organizations
    assert n(4, 300, 2) == 2  # each worker runs at least one check at once
    assert n(None, 499, 10, workers_module.HEALTH_ORGS_PER_WORKER) == 1
    assert n(None, 1000, 10, workers_module.HEALTH_ORGS_PER_WORKER) == 2
    assert workers_module.parallelism_shares(50, 2) == [25, 25]
    assert workers_module.parallelism_shares(11, 3) == [4, 4, 3]


def drop_database(env: Env, sim: Simulator) -> None:
    env.close()
    url = env.vars["RECONCILER_DATABASE_URL"]
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).unlink()
    else:
        from sqlalchemy import create_engine

        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as c:
            c.execute(text("DROP SCHEMA public CASCADE"))
            c.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    sim.reset()


def test_two_workers_print_and_write_what_one_process_does(
    env: Env, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet(env)
    with monkeypatch.context() as m:
        no_children(m)
        one = env.run("apply", "fleet", "--workers", "1")
    assert one.exit_code == 0, one.output
    with env.session() as s:
        written_by_one = snapshot(s)
    health_one = env.run("health", "--workers", "1", "--format", "json")
    assert health_one.exit_code == 0, health_one.output
    drop_database(env, sim)

    two = env.run("apply", "fleet", "--workers", "2")
    assert two.exit_code == 0, two.output
    assert normalized(two.output) == normalized(one.output)
    with env.session() as s:
        assert snapshot(s) == written_by_one
        invariants(s)
        runs = s.scalars(select(Run).where(Run.command == "apply")).all()
        assert [(r.command, r.exit_code) for r in runs] == [("apply", 0)]
    assert env.run("audit", "verify").exit_code == 0
    assert env.run("plan", "fleet", "--detailed-exitcode").exit_code == 0

    health_two = env.run("health", "--workers", "2", "--format", "json")
    assert health_two.exit_code == 0, health_two.output

    def comparable(output: str) -> list[tuple[str, str, str]]:
        return [(r["address"], r["user"], r["status"]) for r in json.loads(output)]

    assert comparable(health_two.output) == comparable(health_one.output)
    assert len(comparable(health_two.output)) == 2 * len(NAMES)
    text_two = env.run("health", "--workers", "2")
    assert text_two.exit_code == 0
    assert f"{2 * len(NAMES)} healthy, 0 unhealthy." in text_two.output


def test_a_failure_in_either_worker_is_the_exit_code(env: Env, sim: Simulator) -> None:
    fleet(env)
    assert env.run("apply", "fleet", "--workers", "2").exit_code == 0
    # every organization shares the Stripe key: revoked, every worker's checks fail
    sim.revoke(FLEET_SECRETS["FLEET_STRIPE_KEY"])
    r = env.run("health", "--workers", "2")
    assert r.exit_code == 1, r.output
    assert f"{len(NAMES)} healthy, {len(NAMES)} unhealthy." in r.output
    with env.session() as s:
        run = s.scalars(select(Run).where(Run.command == "health")).one()
        assert run.exit_code == 1


def test_one_organization_failing_in_a_child_worker_fails_the_apply(
    env: Env, sim: Simulator
) -> None:
    child_org = next(n for n in NAMES if worker_of(n, 2) == 1)
    fleet(env)
    manifest = env.cwd / "fleet" / f"{child_org}.yaml"
    manifest.write_text(manifest.read_text().replace("FLEET_STRIPE_KEY", "BAD_STRIPE_KEY"))
    r = env.run("apply", "fleet", "--workers", "2", BAD_STRIPE_KEY="sk_test_invalid_key_1")
    assert r.exit_code == 1, r.output
    assert f"Error: {child_org}/stripe: " in r.output
    assert "Apply finished with errors" in r.output
    assert r.output.count(": created") >= 2 * (len(NAMES) - 1)


def test_a_lock_refused_in_a_worker_is_reported(env: Env) -> None:
    # one organization for each worker (on SQLite every organization waits out --lock-timeout)
    names = [next(n for n in NAMES if worker_of(n, 2) == w) for w in (0, 1)]
    fleet(env, names)
    assert env.run("apply", "fleet", "--workers", "2").exit_code == 0
    for path in (env.cwd / "fleet").glob("*.yaml"):  # a change for every organization
        path.write_text(path.read_text().replace("invoice.paid", "invoice.created"))
    child_org = next(n for n in NAMES if worker_of(n, 2) == 1)
    with env.session() as s:
        if s.bind.dialect.name == "postgresql":
            s.execute(
                text("SELECT pg_advisory_xact_lock(:ns, :k)"),
                {"ns": NAMESPACE, "k": organization_key(child_org)},
            )
            locked = [child_org]
        else:  # SQLite: the one write lock of the whole file
            s.connection().exec_driver_sql("BEGIN IMMEDIATE")
            locked = names
        r = env.run("apply", "fleet", "--workers", "2", "--lock-timeout", "1")
        s.rollback()
    assert r.exit_code == 1, r.output
    for org in locked:
        assert f"Error: {org}/stripe/webhook_endpoints" in r.output, r.output
        assert f"organization {org!r} is locked" in r.output, r.output


def test_the_job_sent_to_a_worker_holds_no_secret(env: Env) -> None:
    planned = make_plan(None, [str(env.cwd / "manifests")], env.vars, Selection())
    plan, observed = workers_module.subplan(planned, {"acme", "globex"})
    job = pickle.dumps({"plan": plan, "observed": observed, "catalog": planned.catalog})
    assert_no_canary(job, "the job of a worker")
    with pytest.raises(TypeError):
        pickle.dumps(planned.secrets)


def workers_of(pid: int) -> list[int]:
    """The worker processes among ``pid``'s children (not a short-lived helper it runs)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"reconciler.commands.worker" in command:
                found.append(int(child))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


SLOW_S = 1.5  # the simulator's latency once the workers run, so a run is caught in its checks


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


def latency(sim: Simulator, seconds: float) -> None:
    """From now on the simulator answers after ``seconds`` (answers already waiting keep
    their wait)."""
    sim.bind().latency_s = seconds


def start_during_checks(env: Env, slow_sim: Simulator) -> tuple[subprocess.Popen[str], int]:
    """`apply fleet --workers 2` caught in its checks: its plan is made at full speed; once
    the worker process is there the simulator slows down, and two answers have come back
    since. The test interrupts the run, then calls ``latency(slow_sim, 0)`` so that what
    is left of it need not crawl."""
    slow_sim.reset()
    latency(slow_sim, 0)
    proc = spawn(env, "apply", "fleet", "--workers", "2", "--parallelism", "2", **slow_sim.env())
    deadline = time.monotonic() + 60
    while not (kids := workers_of(proc.pid)):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.02)
    latency(slow_sim, SLOW_S)
    answered = slow_sim.request_count()
    while slow_sim.request_count() < answered + 2:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the run never checked"
        time.sleep(0.05)
    return proc, kids[0]


def converges(env: Env) -> None:
    r = env.run("apply", "fleet", "--lock-timeout", "5")
    assert r.exit_code == 0, r.output
    assert env.run("plan", "fleet", "--detailed-exitcode").exit_code == 0
    assert env.run("audit", "verify").exit_code == 0
    with env.session() as s:
        invariants(s)


def test_a_killed_worker_is_reported_and_the_next_apply_converges(
    env: Env, slow_sim: Simulator
) -> None:
    fleet(env)
    proc, child = start_during_checks(env, slow_sim)
    os.kill(child, signal.SIGKILL)
    latency(slow_sim, 0)  # the coordinator's own organizations
    code, out = finish(proc, timeout=120)
    assert code == 1, out
    assert f"worker 2 (pid {child}) stopped unexpectedly (signal 9)" in out
    converges(env)


def test_a_killed_coordinator_stops_its_workers(env: Env, slow_sim: Simulator) -> None:
    fleet(env)
    proc, child = start_during_checks(env, slow_sim)
    proc.kill()
    latency(slow_sim, 0)  # the organization the worker is writing
    finish(proc)
    deadline = time.monotonic() + 60
    while alive(child):
        assert time.monotonic() < deadline, "the worker outlived its coordinator"
        time.sleep(0.05)
    converges(env)


def test_the_run_says_once_that_a_provider_looks_down(caplog: pytest.LogCaptureFixture) -> None:
    from reconciler.health import Breakers

    said = []
    for skipped in (3, 4):  # what two workers' breakers say
        b = Breakers(threshold=2)
        b.record("stripe", None, True)
        b.record("stripe", None, True)
        for _ in range(skipped):
            b.skip("stripe")
        said += b.summary()
    assert len(said) == 2
    caplog.set_level(logging.WARNING, logger="reconciler.health")
    with workers_module.BreakerNotes():
        for sentence in said:
            logging.getLogger("reconciler.health").warning("%s", sentence)
        logging.getLogger("reconciler.health").warning("something else")
        assert [r.getMessage() for r in caplog.records] == ["something else"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages[1:] == [said[0].replace(" 3 more ", " 7 more ")]


def test_a_workers_log_reaches_the_log_of_the_run(env: Env) -> None:
    fleet(env)
    r = env.run("--verbose", "apply", "fleet", "--workers", "2")
    assert r.exit_code == 0, r.output
    child_org = next(n for n in NAMES if worker_of(n, 2) == 1)
    assert f"reconciler.apply: {child_org}: written" in r.output


def test_ctrl_c_of_the_coordinator_stops_its_workers(env: Env, slow_sim: Simulator) -> None:
    fleet(env)
    proc, child = start_during_checks(env, slow_sim)
    proc.send_signal(signal.SIGINT)  # the coordinator only, not its process group
    latency(slow_sim, 0)
    code, out = finish(proc, timeout=120)
    assert code != 0, out
    assert not alive(child)
    converges(env)
