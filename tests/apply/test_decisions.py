"""Apply's decisions as truth tables: which connection changes are checked, which store new
credentials, and what a check's verdict does to statuses (pure: rows in memory, no session)."""

from __future__ import annotations

import pytest

from reconciler.apply.checks import CheckPhase, needs_check, uses_new_credentials
from reconciler.apply.decisions import decide
from reconciler.apply.results import ChangeResult, Status
from reconciler.core.changes import Action, Change, Kind, audit_action
from reconciler.core.desired import Desired
from reconciler.core.state import Observed
from reconciler.db.records import OrgRows
from reconciler.db.schema import Connection, Credential, Instance
from reconciler.health import CheckResult
from tests.builders import (
    NOW,
    connection,
    desired,
    instance,
    make_plan,
    observed,
    stored,
)


def _change(want: Desired, have: Observed | None = None) -> Change:
    p, diags = make_plan(want, have)
    assert not diags.errors
    (change,) = [c for c in p.changes if c.kind is Kind.CONNECTION]
    return change


CREATE = _change(desired(("acme", [connection("acme", "stripe")])))
ROTATE = _change(
    desired(("acme", [connection("acme", "stripe", version=2)])),
    observed(instance("acme", "stripe", stored())),
)
NEW_OWNER = _change(
    desired(("acme", [connection("acme", "stripe", owner="new@acme.example")])),
    observed(instance("acme", "stripe", stored())),
)
SETTINGS = _change(
    desired(("acme", [connection("acme", "stripe", prevent_destroy=True)])),
    observed(instance("acme", "stripe", stored())),
)
DEACTIVATE = _change(
    desired(("acme", [connection("acme", "mapbox", active=False)])),
    observed(instance("acme", "mapbox", stored(provider="mapbox"))),
)
REACTIVATE = _change(
    desired(("acme", [connection("acme", "mapbox")])),
    observed(instance("acme", "mapbox", stored(provider="mapbox"), status="inactive")),
)
CREATE_INACTIVE = _change(desired(("acme", [connection("acme", "mapbox", active=False)])))
ADOPT = _change(
    desired(("acme", [connection("acme", "stripe", adopt=True)])),
    observed(instance("acme", "stripe", stored(managed_by="ui"), managed_by="ui")),
)


@pytest.mark.parametrize(
    ("change", "checked", "new_credentials"),
    [
        (CREATE, True, True),
        (ROTATE, True, True),
        (NEW_OWNER, True, True),
        (SETTINGS, False, False),
        (DEACTIVATE, False, False),
        (REACTIVATE, True, False),
        (CREATE_INACTIVE, False, True),
        (ADOPT, True, True),
    ],
    ids=[
        "create",
        "rotate",
        "new owner",
        "settings",
        "deactivate",
        "reactivate",
        "create inactive",
        "adopt",
    ],
)
def test_what_is_checked_and_what_stores_new_credentials(
    change: Change, checked: bool, new_credentials: bool
) -> None:
    assert needs_check(change) is checked
    assert uses_new_credentials(change) is new_credentials


def _result(healthy: bool) -> CheckResult:
    return CheckResult(
        key="acme/stripe",
        provider="stripe",
        status="healthy" if healthy else "unhealthy",
        failure_type=None if healthy else "auth",
        message="ok" if healthy else "401 Unauthorized",
        response_ms=5,
        provider_code=None,
        identity={},
        attempts=1,
        checked_at=NOW,
    )


def _rows(*, status: str = "connected", credentials: bool = True, inst: str = "active") -> OrgRows:
    rows = OrgRows()
    i = Instance(id=1, organization="acme", provider="stripe", status=inst, managed_by="manifest")
    c = Connection(
        id=1, instance_id=1, user_email="ops@acme.example", status=status, managed_by="manifest"
    )
    rows.instances["stripe"] = i
    rows.connections[1] = [c]
    if credentials:
        rows.credentials[1] = [Credential(id=1, connection_id=1, field="api_key")]
    return rows


@pytest.mark.parametrize(
    ("rows", "verdict", "statuses", "failed", "had_working"),
    [
        (OrgRows(), True, ("active", "connected"), False, False),
        (OrgRows(), False, ("error", "error"), True, False),
        (_rows(), True, ("active", "connected"), False, True),
        # a failed rotation keeps the working credential and both statuses
        (_rows(), False, None, True, True),
        # a failed first connection (no credential) is retried; failing again says error
        (
            _rows(status="error", credentials=False, inst="error"),
            False,
            ("error", "error"),
            True,
            False,
        ),
        # nothing checked: existing statuses stand
        (_rows(status="error", inst="error"), None, ("error", "error"), False, False),
    ],
    ids=[
        "new, healthy",
        "new, unhealthy",
        "rotation, healthy",
        "rotation, unhealthy",
        "retry, unhealthy",
        "unchecked",
    ],
)
def test_what_a_verdict_does_to_statuses(
    rows: OrgRows,
    verdict: bool | None,
    statuses: tuple[str, str] | None,
    failed: bool,
    had_working: bool,
) -> None:
    phase = CheckPhase()
    if verdict is not None:
        phase.results["acme/stripe"] = _result(verdict)
    d = decide(ROTATE if rows.instances else CREATE, phase, rows)
    assert (d.statuses, d.failed, d.had_working, d.blocked) == (
        statuses,
        failed,
        had_working,
        False,
    )


def test_a_deactivated_connection_is_inactive_and_keeps_its_connection_status() -> None:
    rows = _rows()
    rows.instances["mapbox"] = rows.instances.pop("stripe")
    rows.instances["mapbox"].provider = "mapbox"
    d = decide(DEACTIVATE, CheckPhase(), rows)
    assert d.statuses == ("inactive", "connected")


def test_a_blocked_dependent_is_decided_blocked() -> None:
    phase = CheckPhase()
    phase.blocked["acme/stripe"] = "ledger"
    assert decide(CREATE, phase, OrgRows()).blocked


def test_one_vocabulary_for_plan_results_and_audit() -> None:
    assert [a.past for a in Action] == ["created", "updated", "deleted", "adopted", "orphaned"]
    assert ChangeResult.of(ADOPT, Status.DONE, "").result == "adopted"
    assert ChangeResult.of(CREATE, Status.BLOCKED, "").result == "blocked"
    assert ChangeResult.of(ROTATE, Status.FAILED, "").failed
    assert not ChangeResult.of(ROTATE, Status.SKIPPED, "").failed
    resource_update = ChangeResult.of(ROTATE, Status.DONE, "", done=Action.CREATE)
    assert resource_update.result == "created"
    assert audit_action(Kind.CONNECTION, Action.CREATE) == "connection.create"
    assert audit_action(Kind.CONNECTION, Action.UPDATE, failed=True) == "connection.update_failed"
    assert audit_action(Kind.RESOURCE, Action.DELETE) == "resource.delete"
