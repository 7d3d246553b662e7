"""A conflict at the provider fails its connection only (SPEC section 8): the plan carries it
as an error naming the object, leaves that connection out and keeps everything else."""

from __future__ import annotations

from reconciler.core.changes import Plan
from reconciler.core.plan_remote import Refreshed, remote_targets, with_remote
from reconciler.core.remote import RemoteObject
from tests.builders import catalog, connection, desired, make_plan, observed, resource

URL = "https://acme.example/hooks/stripe"
ENDPOINT = f"acme/stripe/webhook_endpoints/{URL}"


def planned(*, keep_failed: bool = False, number: str = "+15555550100") -> Plan:
    cat = catalog()
    want = desired(
        (
            "acme",
            [
                connection(
                    "acme",
                    "stripe",
                    resources=[resource("webhook_endpoints", URL, url=URL, events=["a.b"])],
                ),
                connection(
                    "acme",
                    "quo",
                    resources=[resource("phone_numbers", number, is_default=True, number=number)],
                ),
                connection("acme", "mapbox"),
            ],
        ),
        ("globex", [connection("globex", "mapbox")]),
    )
    have = observed()
    base, diags = make_plan(want, have, cat=cat)
    assert not diags.errors
    targets = remote_targets(cat, want, have, base.organizations)
    theirs = RemoteObject("stripe", "webhook_endpoints", "we_9", URL, {"url": URL})
    numbers = RemoteObject("quo", "phone_numbers", "PN1", "+15555550100", {})
    read = {
        ("acme", "stripe"): Refreshed({"webhook_endpoints": (theirs,)}),
        ("acme", "quo"): Refreshed({"phone_numbers": (numbers,)}),
    }
    return with_remote(cat, want, have, base, targets, read, keep_failed=keep_failed)


def test_a_conflict_leaves_out_its_connection_and_keeps_the_rest() -> None:
    p = planned()
    (error,) = p.errors
    assert (error.connection, error.address) == ("acme/stripe", ENDPOINT)
    assert "we_9" in error.message
    assert str(error).startswith(f"manifests/acme.yaml:1: {ENDPOINT}: ")
    parents = {c.parent for c in p.changes}
    assert "acme/stripe" not in parents
    assert {"acme/quo", "acme/mapbox", "globex/mapbox"} <= parents


def test_a_quo_number_missing_from_the_workspace_leaves_out_quo_only() -> None:
    p = planned(number="+15555550177")
    failed = {e.connection for e in p.errors}
    assert failed == {"acme/stripe", "acme/quo"}
    quo = next(e for e in p.errors if e.connection == "acme/quo")
    assert quo.address == "acme/quo/phone_numbers/+15555550177"
    assert "+15555550177 is not a number" in quo.message
    assert {c.parent for c in p.changes} == {"acme/mapbox", "globex/mapbox"}


def test_drift_keeps_the_failed_connection() -> None:
    p = planned(keep_failed=True)
    assert p.errors and "acme/stripe" in {c.parent for c in p.changes}
