"""``reconciler drift [PATHS]`` (SPEC section 8): what differs between the manifests, the
database and the providers, for a scheduled pipeline job. Read-only: it writes nothing
anywhere (no row, no health record, no audit entry) and sends only GETs.

Findings:
- ``config``: a row differs from its manifest (the plan's changes, e.g. edited in the SaaS's
  screens), and provider-side steps that come from the manifest alone;
- ``provider``: a provider-side resource differs from what was applied, is gone, or collides
  with an object that is not ours;
- ``credential``: a stored credential fails its health check (checked, not recorded).

A provider that could not be read is an error of its connection, not a finding (what is there
is unknown); the other connections are still checked and reported.

Exit 0 when nothing drifted, 2 when something did, 1 when a connection could not be checked or
on any other error (the CLI's error handler).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reconciler.commands.fingerprints import fingerprints_for
from reconciler.commands.inputs import (
    Selection,
    keyring,
    load_inputs,
    open_database,
    policy_from_env,
)
from reconciler.commands.provider_side import with_provider_side
from reconciler.core.catalog import Catalog
from reconciler.core.changes import Plan
from reconciler.core.drift import DriftError, Finding, remote_findings, report
from reconciler.core.plan import plan
from reconciler.core.plan_remote import at_provider
from reconciler.core.remote import RemoteDiff, is_signing_secret_field
from reconciler.core.state import Observed
from reconciler.crypto import KeyRing
from reconciler.db.credentials import decrypt, managed_credentials


@dataclass(frozen=True)
class Drift:
    """What ``drift`` found, and the connections it could not check."""

    findings: list[Finding]
    errors: list[DriftError] = field(default_factory=list)


UNCHECKED = ("unreachable", "rate_limited")  # no verdict on the credential


def run_drift(
    catalog_dir: str | None,
    paths: Sequence[str],
    environ: Mapping[str, str],
    selection: Selection,
    *,
    parallelism: int = 10,
) -> Drift:
    """Every finding and error of the selected organizations, in address order."""
    ring = keyring(environ)
    engine, observed = open_database(environ)
    inputs = load_inputs(catalog_dir, paths, environ, existing=observed, selection=selection)
    fps = fingerprints_for(ring, inputs.desired, observed)
    base, diags = plan(
        inputs.catalog, inputs.desired, observed, fps, providers=selection.provider_filter
    )
    diags.raise_if_errors()
    full = with_provider_side(
        inputs.catalog,
        inputs.desired,
        observed,
        base,
        ring=ring,
        environ=environ,
        parallelism=parallelism,
        providers=selection.provider_filter,
        keep_failed=True,
    )
    findings = config_findings(base) + provider_findings(inputs.catalog, base, full)
    errors = unread_errors(full)
    if engine is not None:  # the command's engine, closed with the others when it ends
        checked = credential_findings(
            inputs.catalog,
            observed,
            base.organizations,
            engine,
            ring,
            environ,
            parallelism,
            selection.provider_filter,
        )
        findings += [f for f in checked if isinstance(f, Finding)]
        errors += [e for e in checked if isinstance(e, DriftError)]
    return Drift(
        sorted(set(findings), key=lambda f: (f.address, f.kind, f.detail)),
        sorted(set(errors), key=lambda e: (e.address, e.detail)),
    )


def config_findings(base: Plan) -> list[Finding]:
    """The plan against the database: each change is a row that differs from its manifest."""
    return [Finding(c.address, "config", f"{c.action.value}: {c.reason}") for c in base.changes]


def provider_findings(catalog: Catalog, base: Plan, full: Plan) -> list[Finding]:
    """The provider-side steps (a step of the manifest's own is ``config``, reported once with
    its row's change) and conflicts there."""
    rows = {c.address for c in base.changes}
    steps = RemoteDiff(tuple(r for c in full.changes for r in c.remote))
    found = [
        Finding(
            f.address, f.kind, at_provider(f.detail, catalog.providers[f.address.split("/")[1]])
        )
        for f in remote_findings(steps)
        if f.kind == "provider" or f.address not in rows
    ]
    found += [Finding(e.address, "provider", e.message) for e in full.errors]
    return found


def unread_errors(full: Plan) -> list[DriftError]:
    """Connections whose provider could not be read (no answer, 5xx, a refused key)."""
    out = []
    for n in full.notes:
        if n.kind == "provider_unread":
            prefix = f"{n.address}: "
            detail = n.message[len(prefix) :] if n.message.startswith(prefix) else n.message
            out.append(DriftError(n.address, detail))
    return out


def _provider(finding: Finding) -> str:
    return finding.address.split("/")[1]


def credential_findings(
    catalog: Catalog,
    observed: Observed,
    organizations: Sequence[str],
    engine: Engine,
    ring: KeyRing,
    environ: Mapping[str, str],
    parallelism: int,
    providers: frozenset[str] | None,
) -> list[Finding | DriftError]:
    """Health checks of the stored credentials of managed, active connections, run and not
    recorded (an OAuth2 token is not refreshed: that would write). A refused credential is a
    finding; a provider that did not answer or kept saying 429 is an error (not checked)."""
    from reconciler.health import CheckRequest, base_url_for, run_checks  # the HTTP stack

    requests: list[CheckRequest] = []
    with Session(engine) as s:
        for org in organizations:
            for inst in observed.of(org):
                conn = inst.managed_connection
                provider = catalog.providers.get(inst.provider)
                if conn is None or provider is None or inst.status == "inactive":
                    continue
                if providers is not None and inst.provider not in providers:
                    continue
                stored = [
                    c
                    for c in managed_credentials(s, org, inst.provider)
                    if not is_signing_secret_field(c.field)
                ]
                if not stored:
                    continue
                base, _ = base_url_for(provider, environ)
                requests.append(CheckRequest(inst.address, provider, decrypt(ring, stored), base))
    results = run_checks(requests, parallelism=parallelism, policy=policy_from_env(environ))
    return [
        DriftError(str(r.key), f"the credential could not be checked: {r.message}")
        if r.failure_type in UNCHECKED
        else Finding(str(r.key), "credential", f"{r.failure_type or r.status}: {r.message}")
        for r in results
        if not r.healthy
    ]


def render(drift: Drift, fmt: str) -> str:
    """The report for stdout; the errors are also the CLI's ``Error:`` lines on stderr."""
    findings, errors = drift.findings, drift.errors
    doc = report(findings, errors)
    if fmt == "json":
        return json.dumps(doc, sort_keys=True, indent=2) + "\n"
    lines = [f"{f.kind:<10} {f.address}: {f.detail}" for f in findings]
    counts = ", ".join(f"{n} {k}" for k, n in doc["summary"].items())
    if errors:
        n = len(errors)
        unchecked = f"{n} connection{'s' if n != 1 else ''} could not be checked (see the errors)"
        lines.append(
            f"Drift: {counts}; {unchecked}." if findings else f"No drift found, but {unchecked}."
        )
    elif findings:
        lines.append(f"Drift: {counts}.")
    else:
        lines.append(
            "No drift: the database and the providers match "
            "the manifests, and every stored credential works."
        )
    return "\n".join(lines) + "\n"
