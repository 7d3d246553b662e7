"""Findings of ``reconciler drift`` (SPEC section 8): what differs between the manifests, the
database and the providers, as plain records for text and ``--format json``. Pure.

``config``: a row differs from its manifest; ``provider``: a provider-side resource differs
from what we applied, is gone, or collides with an object that is not ours; ``credential``: a
stored credential fails its health check.

A connection whose provider could not be read (no answer, 5xx, 401...) is not a finding: what
is there is unknown. It is a ``DriftError``: ``drift`` exits 1 and ``--format json`` lists it
under ``errors``, while the other connections' findings are still reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.core.remote import ChangeSource, RemoteDiff

FindingKind = Literal["config", "provider", "credential"]
KINDS: tuple[FindingKind, ...] = ("config", "provider", "credential")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Finding:
    address: str
    kind: FindingKind
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"address": self.address, "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True)
class DriftError:
    """A connection ``drift`` could not check, and why."""

    address: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"address": self.address, "detail": self.detail}


def remote_findings(diff: RemoteDiff) -> tuple[Finding, ...]:
    """A provider-side diff as findings: what changed at the provider (or collides there) is
    ``provider``; what only the manifest changed is ``config``."""
    found = [
        Finding(
            c.address,
            "config" if c.source is ChangeSource.MANIFEST else "provider",
            f"{c.action.value}: {c.reason}",
        )
        for c in diff.changes
    ]
    found += [Finding(c.address, "provider", c.message) for c in diff.conflicts]
    return tuple(found)


def report(findings: Iterable[Finding], errors: Iterable[DriftError] = ()) -> dict[str, Any]:
    """The ``--format json`` document: format_version, findings, summary (counts per kind of
    finding) and errors (the connections that could not be checked)."""
    ordered = sorted(findings, key=lambda f: (f.address, f.kind, f.detail))
    return {
        "format_version": FORMAT_VERSION,
        "findings": [f.to_json() for f in ordered],
        "summary": {k: sum(1 for f in ordered if f.kind == k) for k in KINDS},
        "errors": [e.to_json() for e in sorted(errors, key=lambda e: (e.address, e.detail))],
    }


def exit_code(findings: Iterable[Finding], errors: Iterable[DriftError] = ()) -> int:
    """1 when a connection could not be checked, else 2 when something drifted, else 0."""
    if any(True for _ in errors):
        return 1
    return 2 if any(True for _ in findings) else 0
