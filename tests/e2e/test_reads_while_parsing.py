"""A plan reads each organization's provider side as soon as its manifest is parsed, while it
parses the rest, and never reads one connection twice.

The last manifest is held from the parser until the simulator has been asked for a webhook
list: a plan that read only after parsing every manifest would wait out the hold."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.core import manifest
from reconciler.simulator import Simulator
from tests.conftest import Env
from tests.e2e.manifests import stripe_fleet

ORGS = [f"org{i:02d}" for i in range(6)]
READ = "GET /stripe/v1/webhook_endpoints"
HOLD = 10.0


def _fleet(env: Env) -> dict[str, str]:
    stripe_fleet(env.cwd / "manifests", ORGS)
    keys = {f"{org.upper()}_STRIPE": f"sk_test_acct_1{org}Parse_key0001" for org in ORGS}
    return {**keys, "GEOAPIFY_KEY": "good_geoapify_key12345"}


def _reads(lines: list[str]) -> int:
    return sum(1 for line in lines if line.startswith(READ))


def _hold_last_manifest(
    monkeypatch: pytest.MonkeyPatch, until: Callable[[], bool]
) -> dict[str, float]:
    """The parser gets the last manifest file only once ``until()`` holds (or after HOLD
    seconds); returns how long it was held."""
    held: dict[str, float] = {}
    documents = manifest._documents

    def holding(path: Path, diags: Any, read: Any) -> Any:
        if path.name.startswith(ORGS[-1]):
            started = time.monotonic()
            while not until() and time.monotonic() - started < HOLD:
                time.sleep(0.01)
            held["seconds"] = time.monotonic() - started
        return documents(path, diags, read)

    monkeypatch.setattr(manifest, "_documents", holding)
    return held


def test_reads_go_out_before_the_last_manifest_is_parsed(
    env: Env, logged: tuple[Simulator, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, lines = logged
    keys = _fleet(env)
    assert sorted(path.name for path in (env.cwd / "manifests").iterdir())[-1].startswith(ORGS[-1])
    held = _hold_last_manifest(monkeypatch, lambda: _reads(lines) > 0)
    r = env.run("plan", "manifests", **keys)
    assert r.exit_code == 0, r.output
    assert held["seconds"] < HOLD, "no provider read went out before the parse ended"
    # and the plan is the plan: every organization's webhook is read once and to be created
    assert _reads(lines) == len(ORGS), lines
    assert "Plan: 18 to create, 0 to update, 0 to delete." in r.output, r.output


def test_a_no_op_plan_reads_each_connection_once(
    env: Env, logged: tuple[Simulator, list[str]]
) -> None:
    _, lines = logged
    keys = _fleet(env)
    assert env.run("apply", "manifests", **keys).exit_code == 0
    lines.clear()
    r = env.run("plan", "manifests", "--detailed-exitcode", **keys)
    assert r.exit_code == 0, r.output
    assert "No changes." in r.output, r.output
    assert _reads(lines) == len(ORGS), lines
    lines.clear()
    # a selection reads only what it selects: nothing is read for the others while parsing
    r = env.run("plan", "manifests", "--org", "org03", **keys)
    assert r.exit_code == 0, r.output
    assert _reads(lines) == 1, lines


def test_a_manifest_error_after_the_reads_went_out_is_said_at_once(
    env: Env, logged: tuple[Simulator, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reads sent for the valid organizations are given up; nothing waits for them."""
    _, lines = logged
    keys = _fleet(env)
    last = sorted((env.cwd / "manifests").iterdir())[-1]
    last.write_text(last.read_text() + "extra: field\n")
    held = _hold_last_manifest(monkeypatch, lambda: _reads(lines) > 0)
    r = env.run("plan", "manifests", **keys)
    assert r.exit_code == 1, r.output
    assert f"{last.name}" in r.output and "extra" in r.output, r.output
    assert held["seconds"] < HOLD
