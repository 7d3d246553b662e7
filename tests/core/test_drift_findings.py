"""Drift findings from a provider-side diff, and the JSON report's shape."""

from __future__ import annotations

from reconciler.core.drift import DriftError, Finding, exit_code, remote_findings, report
from reconciler.core.remote import ChangeSource, RemoteAction, RemoteChange, RemoteConflict
from reconciler.core.remote_diff import RemoteDiff

ADDRESS = "acme/stripe/webhook_endpoints/https://acme.example/h"


def change(source: ChangeSource, reason: str) -> RemoteChange:
    return RemoteChange(
        RemoteAction.UPDATE,
        "stripe",
        "webhook_endpoints",
        "https://acme.example/h",
        ADDRESS,
        reason,
        source,
    )


def test_provider_changes_and_conflicts_are_provider_drift() -> None:
    diff = RemoteDiff(
        (
            change(ChangeSource.PROVIDER, "changed at the provider: events (updated in place)"),
            change(ChangeSource.MANIFEST, "changed in the manifest: events (updated in place)"),
        ),
        (RemoteConflict(ADDRESS, "we_9", "we_9 ... was not created by the reconciler"),),
    )
    found = remote_findings(diff)
    assert [f.kind for f in found] == ["provider", "config", "provider"]
    assert found[0].detail == "update: changed at the provider: events (updated in place)"


def test_report_counts_each_kind_and_sets_the_exit_code() -> None:
    findings = [Finding("b", "provider", "x"), Finding("a", "credential", "y")]
    doc = report(findings)
    assert doc["format_version"] == 1
    assert [f["address"] for f in doc["findings"]] == ["a", "b"]
    assert doc["summary"] == {"config": 0, "provider": 1, "credential": 1}
    assert exit_code(findings) == 2
    assert exit_code([]) == 0


def test_a_connection_that_could_not_be_checked_is_an_error_not_a_finding() -> None:
    findings = [Finding("b", "provider", "x")]
    errors = [DriftError("acme/quo", "Quo could not be read (HTTP 500)")]
    doc = report(findings, errors)
    assert doc["errors"] == [{"address": "acme/quo", "detail": "Quo could not be read (HTTP 500)"}]
    assert doc["summary"] == {"config": 0, "provider": 1, "credential": 0}
    assert exit_code(findings, errors) == 1
    assert exit_code([], errors) == 1
    assert report(findings)["errors"] == []
