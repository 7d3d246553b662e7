"""Crash safety: `reconciler apply` killed with SIGKILL at many points, on both databases.

After every kill the next apply reaches the desired state (plan then shows no changes), with
no duplicate row, no credential without its connection, no connected connection without its
credential, no lock left behind, and an audit log that still verifies. The applies alternate
between two desired states, so every kill interrupts real work: creates, updates of a
credential and of a resource, and a teardown.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from reconciler.simulator import Simulator
from tests.conftest import Env
from tests.db import finish, invariants, spawn

# RECONCILER_TEST_KILL_POINT values (tests/faults.py), in the order they are tried
KILL_POINTS = [
    "sql=INSERT INTO integration_credentials:1",  # a connection row written, its key not yet
    "commit:1",  # the first organization committed, the next not begun
    "locked:2",  # holding the second organization's lock
    "sql=DELETE FROM integration_credentials:1",  # an old key removed, the new one not stored
    "sql=INSERT INTO integration_audit_log:1",  # rows written, their audit entries not yet
    "sql=INSERT INTO integration_health:2",  # the second organization part-way
    "sql:45",  # wherever the 45th statement falls
]


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[Simulator]:
    with Simulator(latency_ms=3000) as s:
        yield s


def desired_state(env: Env, variant: str, originals: dict[str, str]) -> None:
    """``a``: the shipped manifests. ``b``: globex drops Postmark, acme's Stripe key changes,
    acme's second sender is renamed."""
    manifests = env.cwd / "manifests"
    for name, body in originals.items():
        (manifests / name).write_text(body)
    env.vars["ACME_STRIPE_SECRET_KEY"] = "sk_test_crash_a" if variant == "a" else "sk_test_crash_b"
    if variant == "b":
        globex = manifests / "globex.yaml"
        globex.write_text(originals["globex.yaml"].split("    - provider: postmark")[0])
        acme = manifests / "acme.yaml"
        acme.write_text(originals["acme.yaml"].replace("name: Acme Support", "name: Acme Help"))


def recovered(env: Env, what: str) -> None:
    r = env.run("apply", "--lock-timeout", "5")
    assert r.exit_code == 0, (what, r.output)
    r = env.run("plan", "--detailed-exitcode")
    assert r.exit_code == 0 and "No changes." in r.output, (what, r.output)
    r = env.run("audit", "verify")
    assert r.exit_code == 0, (what, r.output)
    with env.session() as s:
        invariants(s)


def kill_during_health_checks(env: Env, slow_sim: Simulator) -> None:
    slow_sim.reset()
    proc = spawn(env, "apply", **slow_sim.env())
    deadline = time.monotonic() + 20
    while slow_sim.request_count() == 0:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.kill()  # SIGKILL, while the checks wait on the simulator
    code, out = finish(proc)
    assert code == -9, out


def test_apply_killed_anywhere_recovers(env: Env, slow_sim: Simulator) -> None:
    manifests = env.cwd / "manifests"
    originals = {p.name: p.read_text() for p in manifests.glob("*.yaml")}
    desired_state(env, "a", originals)
    kill_during_health_checks(env, slow_sim)
    recovered(env, "killed during health checks")
    for i, point in enumerate(KILL_POINTS):
        desired_state(env, "b" if i % 2 == 0 else "a", originals)
        code, out = finish(spawn(env, "apply", RECONCILER_TEST_KILL_POINT=point))
        assert code == -9, (point, "the kill point was not reached", out)
        recovered(env, point)
