"""The plan format (docs/plan-format.md): one codec for ``plan --format json``, ``plan --out``,
``apply --plan`` and ``report --plan``; this module defines the format and writes it.

``plan_to_json`` writes a Plan; ``plan_from_json`` (``planfile_read``) reads one back into the
same typed values, so apply and the report see exactly what was planned. A saved plan
(``SavedPlan``) adds what ``apply --plan`` checks before writing: the catalog digest, the keyed
fingerprints of the secrets the plan saw and whether the database existed. The file holds no
secret value and no absolute path. Pure: values in, text out (``write_saved`` only adds the file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.core.changes import (
    Action,
    Change,
    ConnectionSpec,
    Payload,
    Plan,
    ResourceSpec,
    Unmanaged,
)
from reconciler.core.kept_credentials import KEPT_MARK
from reconciler.core.remote import RemoteChange
from reconciler.core.secret import SENSITIVE

FORMAT_VERSION = "1.1"
STALE = "Saved plan is stale"

# (organization, provider, user, field) -> {key id: fingerprint}
Fingerprints = Mapping[tuple[str, str, str, str], Mapping[str, str]]


@dataclass(frozen=True)
class SavedPlan:
    """A plan file: the plan, and what ``apply --plan`` checks before it writes."""

    plan: Plan
    catalog_digest: str
    fingerprints: Fingerprints = field(default_factory=dict)
    variables: Mapping[tuple[str, str, str, str], str] = field(default_factory=dict)
    database_existed: bool = True
    overrides: Mapping[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    catalog_dir: str | None = None  # relative to the plan file; None: the shipped catalog


def view(payload: Payload | None) -> dict[str, Any] | None:
    """What a plan shows of one side of a change. A connection's credentials are always
    ``(sensitive)``: a payload holds no value to show."""
    if payload is None:
        return None
    if isinstance(payload, ConnectionSpec):
        shown: dict[str, Any] = {
            "owner": payload.owner,
            "active": payload.active,
            "status": payload.status,
            "credentials": {c.field: SENSITIVE for c in payload.credentials},
            "deletion_policy": payload.deletion_policy,
            "prevent_destroy": payload.prevent_destroy,
        }
        if payload.keep_credentials:
            shown[KEPT_MARK] = True
        return shown
    if isinstance(payload, Unmanaged):
        return {
            "managed_by": payload.managed_by,
            "status": payload.status,
            "owners": list(payload.owners),
        }
    assert isinstance(payload, ResourceSpec)
    spec: dict[str, Any] = _plain(payload.spec)
    return spec


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in sorted(v.items())}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def change_to_json(c: Change) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": c.address,
        "action": c.action.value,
        "kind": c.kind.value,
        "organization": c.organization,
        "provider": c.provider,
        "reason": c.reason,
        "reason_code": c.reason_code,
        "before": view(c.before),
        "after": view(c.after),
        "changed": list(c.changed_names()),
    }
    if c.resource is not None:
        out["resource_kind"] = c.resource.kind
        out["identity"] = c.resource.identity
    if c.connection is not None:
        out["credential_variables"] = {r.field: r.variable for r in c.connection.credentials}
    if c.remote:
        out["remote"] = [remote_to_json(r) for r in c.remote]
    return out


def remote_to_json(r: RemoteChange) -> dict[str, Any]:
    """What apply does at the provider (SPEC section 8); never a signing secret, only the
    variable an adopted one is read from."""
    return {
        "action": r.action.value,
        "provider": r.provider,
        "resource_kind": r.kind,
        "identity": r.identity,
        "source": r.source.value,
        "reason": r.reason,
        "remote_id": r.remote_id,
        "before": _plain(r.before) if r.before is not None else None,
        "after": _plain(r.after) if r.after is not None else None,
        "changed": list(r.changed),
        "generation": r.generation,
        "replaces": r.replaces,
        "issues_secret": r.issues_secret,
        "secret_variable": r.secret_variable,
    }


def plan_to_json(plan: Plan, *, overrides: Mapping[str, str]) -> dict[str, Any]:
    s = plan.summary
    return {
        "format_version": FORMAT_VERSION,
        "changes": [change_to_json(c) for c in plan.changes],
        "summary": {a.value: s[a.value] for a in Action},
        "notes": [
            {"address": n.address, "kind": n.kind, "message": n.message, "since": n.since}
            for n in plan.notes
        ],
        "organizations": list(plan.organizations),
        "state": {"lineage": plan.lineage, "serial": plan.serial},
        "overrides": dict(sorted(overrides.items())),
        "errors": [
            {"address": e.address, "connection": e.connection, "message": e.message}
            for e in plan.errors
        ],
    }


def saved_to_json(saved: SavedPlan) -> dict[str, Any]:
    return {
        **plan_to_json(saved.plan, overrides=saved.overrides),
        "saved": {
            "catalog_digest": saved.catalog_digest,
            "catalog_dir": saved.catalog_dir,
            "fingerprints": {
                "|".join(k): dict(sorted(v.items())) for k, v in sorted(saved.fingerprints.items())
            },
            "variables": {"|".join(k): v for k, v in sorted(saved.variables.items())},
            "database_existed": saved.database_existed,
            "git_commit": saved.git_commit,
        },
    }


def dumps(doc: Mapping[str, Any]) -> str:
    """Deterministic JSON: sorted keys, two-space indentation, UTF-8, a final newline."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_saved(saved: SavedPlan, path: Path) -> None:
    """Write atomically: a reader never sees half a plan."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(saved_to_json(saved)), encoding="utf-8")
    os.replace(tmp, path)


__all__ = [
    "FORMAT_VERSION",
    "STALE",
    "SavedPlan",
    "change_to_json",
    "dumps",
    "plan_to_json",
    "saved_to_json",
    "write_saved",
]
