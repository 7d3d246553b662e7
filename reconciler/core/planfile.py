"""The plan format (docs/plan-format.md): one codec for ``plan --format json``, ``plan --out``,
``apply --plan`` and ``report --plan``.

``plan_to_json`` writes a Plan; ``plan_from_json`` reads one back into the same typed values,
so apply and the report see exactly what was planned. A saved plan (``SavedPlan``) adds what
``apply --plan`` checks before writing: the catalog digest, the keyed fingerprints of the
secrets the plan saw and whether the database existed. The file holds no secret value and no
absolute path. Pure: text in, values out (``read_saved``/``write_saved`` only add the file).
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
    Attr,
    Change,
    ConnectionSpec,
    CredentialRef,
    Kind,
    Note,
    Payload,
    Plan,
    ResourceSpec,
    Unmanaged,
)
from reconciler.core.errors import InputError, StalePlanError
from reconciler.core.kept_credentials import KEPT_MARK
from reconciler.core.remote import ChangeSource, RemoteAction, RemoteChange
from reconciler.core.secret import SENSITIVE

FORMAT_VERSION = "1.1"
STALE = "Saved plan is stale"
_AGAIN = "run `reconciler plan --out` again"

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


# -- writing ---------------------------------------------------------------------------------


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


def remote_from_json(raw: Any, address: str, where: str) -> RemoteChange:
    if not isinstance(raw, Mapping):
        raise InputError(f"{where}: each remote change is an object")
    try:
        action = RemoteAction(str(raw.get("action")))
        source = ChangeSource(str(raw.get("source") or "manifest"))
    except ValueError:
        raise InputError(f"{where}: unknown remote action or source") from None
    generation = raw.get("generation")
    before, after = raw.get("before"), raw.get("after")
    return RemoteChange(
        action,
        _text(raw, "provider"),
        _text(raw, "resource_kind"),
        _text(raw, "identity"),
        address,
        _text(raw, "reason"),
        source,
        _text(raw, "remote_id") or None,
        dict(before) if isinstance(before, Mapping) else None,
        dict(after) if isinstance(after, Mapping) else None,
        tuple(str(x) for x in raw.get("changed") or []),
        generation if isinstance(generation, int) and not isinstance(generation, bool) else 0,
        _text(raw, "replaces") or None,
        raw.get("issues_secret") is True,
        _text(raw, "secret_variable") or None,
    )


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


# -- reading ---------------------------------------------------------------------------------


def _text(raw: Mapping[str, Any], key: str, default: str = "") -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else default


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _connection(
    raw: Any, organization: str, provider: str, variables: Mapping[str, Any], fps: Fingerprints
) -> ConnectionSpec | Unmanaged | None:
    if not isinstance(raw, Mapping):
        return None
    if "owners" in raw:
        owners = raw["owners"] if isinstance(raw["owners"], list) else []
        return Unmanaged(
            _text(raw, "managed_by"), _text(raw, "status"), tuple(str(o) for o in owners)
        )
    owner = _text(raw, "owner")
    # only the field names are read: whatever a file says a credential is, it is not shown
    names = sorted(str(f) for f in _mapping(raw.get("credentials")))
    return ConnectionSpec(
        owner=owner,
        active=raw.get("active", True) is not False,
        status=_text(raw, "status", "active"),
        deletion_policy=_text(raw, "deletion_policy", "delete"),
        prevent_destroy=raw.get("prevent_destroy") is True,
        keep_credentials=raw.get(KEPT_MARK) is True,
        credentials=tuple(
            CredentialRef(
                f,
                str(variables.get(f) or ""),
                dict(fps.get((organization, provider, owner, f), {})),
            )
            for f in names
        ),
    )


def _resource(raw: Any, kind: str, identity: str) -> ResourceSpec | None:
    if not isinstance(raw, Mapping):
        return None
    return ResourceSpec(kind, identity, dict(raw), raw.get("default") is True)


def change_from_json(raw: Any, where: str, fps: Fingerprints | None = None) -> Change:
    """A change of the plan format, as typed values. What a file leaves out takes its default
    (hand-written plans are read too); an unknown action or attribute is refused."""
    actions = ", ".join(a.value for a in Action)
    if not isinstance(raw, Mapping) or not _text(raw, "address"):
        raise InputError(f"{where}: each change needs an address and an action ({actions})")
    try:
        action = Action(str(raw.get("action")))
    except ValueError:
        raise InputError(
            f"{where}: each change needs an address and an action ({actions})"
        ) from None
    address = _text(raw, "address")
    parts = address.split("/")
    organization = _text(raw, "organization") or parts[0]
    provider = _text(raw, "provider") or (parts[1] if len(parts) > 1 else "")
    try:
        kind = Kind(_text(raw, "kind") or (Kind.CONNECTION if len(parts) <= 2 else Kind.RESOURCE))
    except ValueError:
        raise InputError(f"{where}: kind must be connection or resource") from None
    changed: set[Attr] = set()
    credentials: list[str] = []
    for name in raw.get("changed") or []:
        if isinstance(name, str) and name.startswith("credentials."):
            changed.add(Attr.CREDENTIALS)
            credentials.append(name.split(".", 1)[1])
            continue
        try:
            changed.add(Attr(name))
        except ValueError:
            raise InputError(f"{where}: unknown changed attribute {name!r}") from None
    before: Payload | None
    after: Payload | None
    if kind is Kind.CONNECTION:
        variables = _mapping(raw.get("credential_variables"))
        before = _connection(raw.get("before"), organization, provider, {}, {})
        after = _connection(raw.get("after"), organization, provider, variables, fps or {})
    else:
        rkind = _text(raw, "resource_kind") or (parts[2] if len(parts) > 2 else "")
        identity = _text(raw, "identity") or (parts[3] if len(parts) > 3 else rkind)
        before = _resource(raw.get("before"), rkind, identity)
        after = _resource(raw.get("after"), rkind, identity)
    return Change(
        address,
        action,
        kind,
        organization,
        provider,
        _text(raw, "reason"),
        _text(raw, "reason_code"),
        before,
        after,
        frozenset(changed),
        tuple(credentials),
        tuple(
            remote_from_json(r, address, f"{where}: remote[{i}]")
            for i, r in enumerate(raw.get("remote") or [])
        ),
    )


def _version(doc: Any, where: str) -> str:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("changes"), list):
        raise InputError(f"{where}: not a saved plan; write one with `reconciler plan --out FILE`")
    return str(doc.get("format_version", ""))


def plan_from_json(doc: Any, where: str, fps: Fingerprints | None = None) -> tuple[Plan, str]:
    """The Plan of a plan document and its format version; refuses a major version other than
    this reconciler's (InputError naming ``where``)."""
    version = _version(doc, where)
    major = FORMAT_VERSION.split(".", 1)[0]
    if version.split(".", 1)[0] != major:
        raise InputError(
            f"{where}: plan format {version or '(none)'} is not supported by this reconciler "
            f"(it reads {major}.x)"
        )
    changes = tuple(
        change_from_json(c, f"{where}: changes[{i}]", fps) for i, c in enumerate(doc["changes"])
    )
    notes = tuple(
        Note(_text(n, "address"), _text(n, "kind"), _text(n, "message"), n.get("since"))
        for n in doc.get("notes") or []
        if isinstance(n, Mapping)
    )
    state = _mapping(doc.get("state"))
    serial = state.get("serial")
    return (
        Plan(
            changes=changes,
            notes=notes,
            organizations=tuple(o for o in doc.get("organizations") or [] if isinstance(o, str)),
            lineage=_text(state, "lineage"),
            serial=serial if isinstance(serial, int) and not isinstance(serial, bool) else 0,
        ),
        version,
    )


def read_document(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(
            f"{path}: cannot read the saved plan ({type(e).__name__}); "
            "write one with `reconciler plan --out FILE`"
        ) from None


def saved_from_json(doc: Any, where: str) -> SavedPlan:
    """A saved plan, for ``apply --plan``: only this reconciler's very format version is
    applied (StalePlanError otherwise)."""
    version = _version(doc, where)
    saved = doc.get("saved")
    if not isinstance(saved, Mapping) or "catalog_digest" not in saved:
        raise InputError(f"{where}: not a saved plan (made by `reconciler plan --out FILE`)")
    if version != FORMAT_VERSION:
        raise StalePlanError(
            f"{STALE}: it has format version {version}, this reconciler "
            f"writes {FORMAT_VERSION}; {_AGAIN}"
        )
    try:
        fps = {
            _key(key): {str(k): str(v) for k, v in by_id.items()}
            for key, by_id in _mapping(saved.get("fingerprints")).items()
        }
        variables = {_key(key): str(v) for key, v in _mapping(saved.get("variables")).items()}
    except (ValueError, AttributeError):
        raise InputError(f"{where}: the saved plan's fingerprints are malformed") from None
    plan, _ = plan_from_json(doc, where, fps)
    catalog_dir = saved.get("catalog_dir")
    return SavedPlan(
        plan=plan,
        catalog_digest=str(saved["catalog_digest"]),
        fingerprints=fps,
        variables=variables,
        database_existed=saved.get("database_existed") is not False,
        overrides={str(k): str(v) for k, v in _mapping(doc.get("overrides")).items()},
        git_commit=_text(saved, "git_commit") or None,
        catalog_dir=catalog_dir if isinstance(catalog_dir, str) else None,
    )


def _key(text: str) -> tuple[str, str, str, str]:
    org, provider, user, fname = text.split("|")
    return (org, provider, user, fname)


def read_saved(path: Path) -> SavedPlan:
    return saved_from_json(read_document(path), str(path))


__all__ = [
    "FORMAT_VERSION",
    "STALE",
    "SavedPlan",
    "change_from_json",
    "change_to_json",
    "dumps",
    "plan_from_json",
    "plan_to_json",
    "read_document",
    "read_saved",
    "saved_from_json",
    "saved_to_json",
    "write_saved",
]
