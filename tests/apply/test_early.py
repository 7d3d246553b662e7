"""Which checks apply sends while its plan reads the provider side (a truth table), and how
the checks stop when the reads are done: those in flight answered, the rest left to apply."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from reconciler.apply.early import EarlyChecks, early_requests
from reconciler.core.changes import Plan
from reconciler.core.secret import Secret
from reconciler.health import CheckRequest, RetryPolicy
from tests.apply.test_decisions import (
    ADOPT,
    CREATE,
    CREATE_INACTIVE,
    DEACTIVATE,
    NEW_OWNER,
    REACTIVATE,
    ROTATE,
    SETTINGS,
)
from tests.builders import catalog, connection, desired, make_plan
from tests.health.test_checks import ScriptedServer, js, serve  # noqa: F401


def _secrets(p: Plan) -> dict[str, Secret]:
    """Every variable the plan's credentials name, as the manifest would give it."""
    out = {}
    for ch in p.changes:
        for ref in ch.connection.credentials if ch.connection else ():
            if ref.variable:
                out[ref.variable] = Secret(f"value-of-{ref.variable}", ref.variable)
    return out


def _sent_early(p: Plan, cat: object = None) -> list[str]:
    cat = cat or catalog()
    return [str(r.key) for r in early_requests(p, cat, _secrets(p), {})]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "early"),
    [
        (CREATE, True),
        (ROTATE, True),
        (NEW_OWNER, True),
        (ADOPT, True),
        (SETTINGS, False),  # not checked at all
        (DEACTIVATE, False),
        (CREATE_INACTIVE, False),
        (REACTIVATE, False),  # checked with the stored key, which apply decrypts under its lock
    ],
    ids=["create", "rotate", "new owner", "adopt", "settings", "deactivate", "inactive", "react"],
)
def test_which_checks_go_out_during_the_reads(change: object, early: bool) -> None:
    p = Plan(changes=(change,))  # type: ignore[arg-type]
    assert _sent_early(p) == (["acme/" + change.provider] if early else [])  # type: ignore[attr-defined]


def test_a_dependent_and_an_oauth2_connection_wait_for_apply() -> None:
    deps = catalog("catalog_deps")
    p, _ = make_plan(
        desired(("acme", [connection("acme", "ledger"), connection("acme", "invoicing")])),
        cat=deps,
    )
    assert _sent_early(p, deps) == ["acme/ledger"]  # invoicing depends on ledger
    oauth = catalog("catalog_oauth")
    fields = ("client_id", "client_secret", "refresh_token")
    p, _ = make_plan(desired(("acme", [connection("acme", "oauthdemo", fields=fields)])), cat=oauth)
    assert _sent_early(p, oauth) == []  # its check first trades the refresh token: once


def test_a_missing_variable_is_left_to_apply_to_name() -> None:
    p, _ = make_plan(desired(("acme", [connection("acme", "stripe")])))
    assert [str(r.key) for r in early_requests(p, catalog(), {}, {})] == []


OK = js(200, {"id": "acct_1A", "charges_enabled": True})


def _requests(base: str, n: int) -> list[CheckRequest]:
    orgs = [(f"org{i}", [connection(f"org{i}", "stripe")]) for i in range(n)]
    p, _ = make_plan(desired(*orgs))
    return early_requests(p, catalog(), _secrets(p), {"RECONCILER_BASE_URL_STRIPE": base})


def test_when_the_reads_end_checks_in_flight_are_answered_and_no_more_are_sent(
    serve: Callable[..., tuple[str, ScriptedServer]],  # noqa: F811 (the fixture)
) -> None:
    base, server = serve(lambda seen, count: OK, delay=0.3)
    checks = EarlyChecks(_requests(base, 6), parallelism=2, policy=RetryPolicy(), environ={})
    with checks.running():
        deadline = time.monotonic() + 5
        while len(server.seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    # the two in flight when the block ended were waited for; the other four were not sent
    assert len(server.seen) == 2
    assert len(checks.results) == 2
    assert all(r.healthy for r in checks.results.values())


def test_an_error_in_the_block_gives_up_the_checks_in_flight(
    serve: Callable[..., tuple[str, ScriptedServer]],  # noqa: F811 (the fixture)
) -> None:
    base, server = serve(lambda seen, count: OK, delay=5.0)
    checks = EarlyChecks(_requests(base, 2), parallelism=2, policy=RetryPolicy(), environ={})
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), checks.running():
        while len(server.seen) < 2 and time.monotonic() - started < 5:
            time.sleep(0.01)
        raise KeyboardInterrupt
    assert time.monotonic() - started < 4  # not the 5 s the answers would have taken
    assert checks.results == {}
    assert not [t for t in threading.enumerate() if t.name == "reconciler-early-checks"]
