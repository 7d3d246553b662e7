"""`apply --plan FILE` and the provider side (SPEC section 8): the connections whose changes
have provider steps are read again (GET only) before anything is written; when an object a
step acts on was deleted or changed at the provider, or an object with the identity a step
creates appeared there, the plan is refused as stale (exit 1), naming what moved, and nothing
is written at the provider or in the database. An untouched provider side applies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from reconciler.simulator import Simulator
from tests.conftest import Env
from tests.e2e.test_provider_resources import (
    ENDPOINT,
    POSTMARK_KEY,
    POSTMARK_URL,
    STRIPE_KEY,
    STRIPE_URL,
    dump,
    edit,
)

HOOK = f"acme/postmark/webhooks/outbound:{POSTMARK_URL}"


def control(sim: Simulator, what: str, body: dict[str, object]) -> None:
    """The simulator's `/_sim` controls, as a person behind the tool's back uses them."""
    r = httpx.post(f"{sim.url}/_sim/objects/{what}", json=body)
    assert r.status_code == 200, r.text


def saved_plan_to_change_both(env: Env, tmp_path: Path) -> Path:
    """The shipped manifests' webhooks applied, then a manifest edit (Stripe events, the
    outbound Postmark webhook's triggers) saved as a plan of two in-place updates at the
    providers."""
    assert env.run("apply").exit_code == 0
    edit(env, "events: [invoice.paid, customer.subscription.deleted]", "events: [invoice.paid]")
    edit(env, "triggers: [delivery, bounce, spam_complaint]", "triggers: [delivery]")
    plan_file = tmp_path / "plan.json"
    r = env.run("plan", "--out", str(plan_file))
    assert r.exit_code == 0, r.output
    steps = {
        c["address"]: [s["action"] for s in c.get("remote", [])]
        for c in json.loads(plan_file.read_text())["changes"]
    }
    assert steps == {ENDPOINT: ["update"], HOOK: ["update"]}, steps
    return plan_file


def outbound(sim: Simulator) -> list[dict[str, Any]]:
    """The outbound Postmark webhook (the shipped manifest also declares a broadcast one)."""
    return [
        h for h in sim.objects("postmark", "webhooks", POSTMARK_KEY) if h["Url"] == POSTMARK_URL
    ]


def state(env: Env) -> str:
    """Every table but ``reconciler_runs``, where each command records its exit code (for
    ``reconciler metrics``), whatever it did."""
    return "\n".join(t for t in dump(env).splitlines() if not t.startswith("reconciler_runs:"))


def refused(env: Env, log: list[str], plan_file: Path) -> str:
    """`apply --plan` exits 1 as stale, and writes nothing anywhere; its output."""
    before = state(env)
    seen = len(log)
    r = env.run("apply", "--plan", str(plan_file))
    assert r.exit_code == 1, r.output
    assert "Error: Saved plan is stale: the provider side changed since the plan was made (" in (
        r.stderr
    ), r.output
    assert "run `reconciler plan --out` again" in r.stderr
    assert state(env) == before
    assert log[seen:] and all(line.startswith("GET ") for line in log[seen:]), log[seen:]
    return r.stderr


def test_deleted_at_the_provider_refuses_the_saved_plan(
    env: Env, tmp_path: Path, logged: tuple[Simulator, list[str]]
) -> None:
    sim, log = logged
    plan_file = saved_plan_to_change_both(env, tmp_path)
    (endpoint,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    control(
        sim,
        "delete",
        {
            "provider": "stripe",
            "kind": "webhook_endpoints",
            "key": STRIPE_KEY,
            "id": endpoint["id"],
        },
    )
    err = refused(env, log, plan_file)
    assert f"{ENDPOINT}: deleted at Stripe ({endpoint['id']})" in err
    assert HOOK not in err  # the Postmark step still fits
    # a new plan sees it and re-creates it
    r = env.run("plan")
    assert f"deleted at Stripe (was {endpoint['id']}); re-created" in r.stdout
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    (again,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    assert again["id"] != endpoint["id"] and again["enabled_events"] == ["invoice.paid"]


def test_changed_at_the_provider_refuses_the_saved_plan(
    env: Env, tmp_path: Path, logged: tuple[Simulator, list[str]]
) -> None:
    sim, log = logged
    plan_file = saved_plan_to_change_both(env, tmp_path)
    (hook,) = outbound(sim)
    control(
        sim,
        "change",
        {
            "provider": "postmark",
            "kind": "webhooks",
            "key": POSTMARK_KEY,
            "id": str(hook["ID"]),
            "fields": {"Url": "https://elsewhere.example/hook"},
        },
    )
    err = refused(env, log, plan_file)
    assert f"{HOOK}: changed at Postmark ({hook['ID']}: url)" in err
    assert f"{ENDPOINT}:" not in err


def test_an_object_made_at_the_provider_refuses_a_saved_create(
    env: Env, tmp_path: Path, logged: tuple[Simulator, list[str]]
) -> None:
    sim, log = logged
    plan_file = tmp_path / "plan.json"
    assert env.run("plan", "--out", str(plan_file)).exit_code == 0
    made = sim.seed_object(
        "stripe",
        "webhook_endpoints",
        STRIPE_KEY,
        {"url": STRIPE_URL, "enabled_events[]": ["invoice.paid"]},
    )
    err = refused(env, log, plan_file)
    assert f"{ENDPOINT}: an object with this identity appeared at Stripe ({made['id']})" in err
    assert len(sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)) == 1


def test_an_untouched_provider_side_applies_the_saved_plan(
    env: Env, tmp_path: Path, logged: tuple[Simulator, list[str]]
) -> None:
    sim, log = logged
    plan_file = saved_plan_to_change_both(env, tmp_path)
    (endpoint,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    seen = len(log)
    r = env.run("apply", "--plan", str(plan_file))
    assert r.exit_code == 0, r.output
    assert f"{ENDPOINT}: updated in place at Stripe ({endpoint['id']})" in r.stdout
    (updated,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    assert updated["id"] == endpoint["id"] and updated["enabled_events"] == ["invoice.paid"]
    (hook,) = outbound(sim)
    assert {k for k, v in hook["Triggers"].items() if v["Enabled"]} == {"Delivery"}
    # the check reads only: one GET per kind of each connection with steps, before the writes
    writes = [line for line in log[seen:] if not line.startswith("GET ")]
    assert len(writes) == 2, log[seen:]
    assert "No changes." in env.run("plan").stdout
