"""Crash safety at the provider (SPEC section 8): `reconciler apply` killed with SIGKILL after
the providers answered and before the commit. The next apply converges with nothing
duplicated at the provider or in the database, and the signing secret stored is the one the
provider holds for the object that stays."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from reconciler.core.remote import signing_secret_field
from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.locking import NAMESPACE
from reconciler.db.schema import Credential, PendingCreate, Resource
from reconciler.simulator import Simulator
from tests.conftest import CANARIES, Env
from tests.db import (
    HoldFirstWrite,
    finish,
    holder_rows,
    invariants,
    is_postgresql,
    spawn,
    spawn_at_barrier,
)
from tests.e2e.test_provider_resources import POSTMARK_URL, QUO_MESSAGES_URL, STRIPE_URL

STRIPE_KEY = CANARIES["ACME_STRIPE_SECRET_KEY"]
POSTMARK_KEY = CANARIES["ACME_POSTMARK_TOKEN"]
QUO_KEY = CANARIES["ACME_QUO_KEY"]


def stored_secret(env: Env, kind: str, identity: str) -> str:
    ring = KeyRing.from_env(env.vars)
    field = signing_secret_field(kind, identity)
    with env.session() as s:
        (row,) = [c for c in s.scalars(select(Credential)) if c.field == field]
        addr = CredentialAddress(
            "acme", "stripe" if kind == "webhook_endpoints" else "quo", "ops@acme.example", field
        )
        return ring.decrypt(row.ciphertext, addr)


def converged(env: Env, sim: Simulator) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    r = env.run("apply", "--lock-timeout", "5")
    assert r.exit_code == 0, r.output
    r = env.run("plan", "--detailed-exitcode")
    assert r.exit_code == 0 and "No changes." in r.output, r.output
    # the shipped manifest's webhooks, each once: one at Stripe, two at Postmark, two at Quo
    (endpoint,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    hooks = sim.objects("postmark", "webhooks", POSTMARK_KEY)
    quos = sim.objects("quo", "webhooks", QUO_KEY)
    assert len(hooks) == len(quos) == 2
    (hook,) = [h for h in hooks if h["Url"] == POSTMARK_URL]
    (quo,) = [w for w in quos if w["url"] == QUO_MESSAGES_URL]
    assert stored_secret(env, "webhook_endpoints", STRIPE_URL) == endpoint["secret"]
    assert stored_secret(env, "webhooks", f"messages:{QUO_MESSAGES_URL}") == quo["key"]
    with env.session() as s:
        invariants(s)
        rows = {(r.kind, r.identity): r for r in s.scalars(select(Resource))}
        assert rows[("webhook_endpoints", STRIPE_URL)].remote_id == endpoint["id"]
        assert rows[("webhooks", f"outbound:{POSTMARK_URL}")].remote_id == str(hook["ID"])
        assert rows[("webhooks", f"messages:{QUO_MESSAGES_URL}")].remote_id == quo["id"]
        assert list(s.scalars(select(PendingCreate))) == []
    return endpoint, hook, quo


def test_killed_after_the_providers_answered_the_first_creates(env: Env, sim: Simulator) -> None:
    # acme's rows are inserted after all of its provider calls: killed there, nothing of
    # acme is committed, while Stripe, Postmark and Quo hold the new webhooks
    code, out = finish(
        spawn(
            env,
            "apply",
            "--org",
            "acme",
            RECONCILER_TEST_KILL_POINT="sql=INSERT INTO integration_resources:1",
        )
    )
    assert code == -9, out
    assert len(sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)) == 1
    first_hooks = sim.objects("postmark", "webhooks", POSTMARK_KEY)
    assert len(first_hooks) == 2
    assert len(sim.objects("quo", "webhooks", QUO_KEY)) == 2
    converged(env, sim)
    # the pending creates: recorded as ours, not re-made
    assert sorted(h["ID"] for h in sim.objects("postmark", "webhooks", POSTMARK_KEY)) == sorted(
        h["ID"] for h in first_hooks
    )


def test_killed_after_a_re_create_answered(env: Env, sim: Simulator) -> None:
    assert env.run("apply").exit_code == 0
    first, _, _ = converged(env, sim)
    sim.delete_object("stripe", "webhook_endpoints", STRIPE_KEY, first["id"])
    code, out = finish(
        spawn(
            env,
            "apply",
            "--org",
            "acme",
            RECONCILER_TEST_KILL_POINT="sql=UPDATE integration_resources:1",
        )
    )
    assert code == -9, out
    assert len(sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)) == 1
    endpoint, _, _ = converged(env, sim)
    assert endpoint["id"] != first["id"]


def test_a_second_apply_waits_for_the_provider_calls_and_names_the_holder(
    env: Env, tmp_path: Path
) -> None:
    """The organization's lock covers the provider calls: a second apply of it, started
    while the first waits on a provider's answer, waits --lock-timeout and exits 1 naming
    the organization and the holder; each webhook was created once."""
    hold = HoldFirstWrite()
    with Simulator(access_log=hold) as sim:
        env.vars.update(sim.env())
        # the held answer stays within the read timeout (10 s at this deadline)
        env.vars["RECONCILER_CHECK_DEADLINE"] = "30"
        assert env.run("db", "upgrade").exit_code == 0
        trace = tmp_path / "trace"
        first = spawn(env, "apply", "--org", "acme", RECONCILER_TEST_TRACE=str(trace))
        try:
            deadline = time.monotonic() + 30
            while not hold.held.wait(0.05):  # the first is inside its first provider write
                assert first.poll() is None, first.communicate()[0]
                assert time.monotonic() < deadline
            assert " locked " in trace.read_text()
            second = spawn(env, "apply", "--org", "acme", "--lock-timeout", "1")
            code2, out2 = finish(second, timeout=90)
        finally:
            hold.release()
        code1, out1 = finish(first, timeout=90)
        assert code1 == 0, out1
        assert code2 == 1, out2
        # waited, then found acme written by the holder; or gave up waiting for it
        assert ("'acme' is locked" in out2 and "held by" in out2) or (
            "acme changed in the database while this apply ran (written by ci-bot (apply)" in out2
        ), out2
        assert "ci-bot" in out2
        assert len(sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)) == 1
        assert len(sim.objects("postmark", "webhooks", POSTMARK_KEY)) == 2
        assert len(sim.objects("quo", "webhooks", QUO_KEY)) == 2


def waiting_for_a_lock(env: Env) -> bool:
    """Whether a second apply waits for an organization's lock: its holder row beside the
    first's (SQLite), or an advisory lock not granted (PostgreSQL)."""
    with env.session() as s:
        if is_postgresql(env):
            return bool(
                s.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND NOT granted AND classid = :ns"
                    ),
                    {"ns": NAMESPACE},
                )
            )
        return len(holder_rows(s)) >= 2


def test_a_second_apply_planned_before_the_calls_waits_through_them(
    env: Env, tmp_path: Path
) -> None:
    """The organization's lock covers the provider calls: a second apply of it, planned
    before the first called any provider, waits for the first to finish its calls and
    writes, then finds the organization written by the holder, names it and exits 1; each
    webhook was created once."""
    with Simulator(latency_ms=1000) as slow:
        env.vars.update(slow.env())
        assert env.run("db", "upgrade").exit_code == 0
        # the first stands at its pending commit, before any call, holding acme
        first, release = spawn_at_barrier(env, tmp_path, "apply", "--org", "acme")
        second = spawn(env, "apply", "--org", "acme", "--lock-timeout", "60")
        deadline = time.monotonic() + 60
        while not waiting_for_a_lock(env):
            assert second.poll() is None, finish(second)
            assert time.monotonic() < deadline
            time.sleep(0.05)
        release.touch()  # the first calls the providers (a second each), then writes
        code1, out1 = finish(first, timeout=90)
        code2, out2 = finish(second, timeout=90)
        assert code1 == 0, out1
        assert code2 == 1, out2
        assert (
            "acme changed in the database while this apply ran (written by ci-bot (apply)" in out2
        ), out2
        assert len(slow.objects("stripe", "webhook_endpoints", STRIPE_KEY)) == 1
        assert len(slow.objects("postmark", "webhooks", POSTMARK_KEY)) == 2
        assert len(slow.objects("quo", "webhooks", QUO_KEY)) == 2


def test_the_lock_is_held_from_the_pending_commit_through_the_provider_calls(
    env: Env, tmp_path: Path
) -> None:
    """Postmark and Quo cannot replay a create, so apply commits it as pending before the
    call; the organization's lock stays held across that commit. A second apply started
    while the first stands between its pending commit and its provider calls waits
    --lock-timeout and exits 1 naming the organization and the holder, and writes nothing;
    the providers see each create once, from the first."""
    log: list[str] = []
    with Simulator(access_log=log.append) as sim:
        env.vars.update(sim.env())
        assert env.run("db", "upgrade").exit_code == 0
        # the first commit of an apply of acme is its pending creates
        first, release = spawn_at_barrier(env, tmp_path, "apply", "--org", "acme")
        with env.session() as s:
            # Postmark's webhooks and senders, Quo's webhooks: none can replay a create
            assert {p.kind for p in s.scalars(select(PendingCreate))} == {
                "sender_emails",
                "webhooks",
            }
        posts_before = [line for line in log if not line.startswith("GET ")]
        second_trace = tmp_path / "second-trace"
        code2, out2 = finish(
            spawn(
                env,
                "apply",
                "--org",
                "acme",
                "--lock-timeout",
                "2",
                RECONCILER_TEST_TRACE=str(second_trace),
            )
        )
        held = first.poll() is None  # still at its barrier: the second gave up meanwhile
        release.touch()
        code1, out1 = finish(first)
        converged(env, sim)
    assert held
    assert code1 == 0, out1
    assert code2 == 1, out2
    assert "organization 'acme' is locked" in out2, out2
    assert "held by ci-bot on" in out2 and "since 20" in out2, out2
    assert "waited 2 s (--lock-timeout)" in out2
    assert " locked " not in (second_trace.read_text() if second_trace.exists() else "")
    # nothing reached a provider but GETs before the first went on; then each create once
    assert posts_before == []
    posts = sorted(line for line in log if not line.startswith("GET "))
    assert posts == [
        "POST /postmark/senders 200",
        "POST /postmark/senders 200",
        "POST /postmark/webhooks 200",
        "POST /postmark/webhooks 200",
        "POST /quo/v1/webhooks/calls 201",
        "POST /quo/v1/webhooks/messages 201",
        "POST /stripe/v1/webhook_endpoints 200",
    ], log
