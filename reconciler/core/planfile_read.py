"""Reading the plan format (docs/plan-format.md) back into typed values: ``plan --format json``
output for ``report --plan``, and a saved plan for ``apply --plan``.

What a file leaves out takes its default (hand-written plans are read too); an unknown action or
attribute, or another major format version, is refused with an InputError naming where it is.
Only a credential's field name is read, never a value, so a file cannot make a reader show a
secret. Pure: text in, values out (``read_document``/``read_saved`` only add the file). The
writing side, the format's version and ``SavedPlan`` are in ``planfile``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
from reconciler.core.planfile import FORMAT_VERSION, STALE, Fingerprints, SavedPlan
from reconciler.core.remote import ChangeSource, RemoteAction, RemoteChange

_AGAIN = "run `reconciler plan --out` again"


def _text(raw: Mapping[str, Any], key: str, default: str = "") -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else default


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


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
    "change_from_json",
    "plan_from_json",
    "read_document",
    "read_saved",
    "saved_from_json",
]
