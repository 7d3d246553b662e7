"""Reading a saved plan (``reconciler plan --out FILE``) for the plan page.

Only the public parts are read: format version, changes, notes, organizations and state; the
counts are made from the changes, so the page always agrees with itself. The ``saved``
section (what ``apply --plan`` needs) is never looked at. Credential values are shown as
``(sensitive)`` whatever the file says, so a hand-edited plan cannot put a secret on the page
either.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.core.errors import InputError

ACTIONS = ("create", "update", "delete", "adopt", "orphan")
SYMBOLS = {"create": "+", "update": "~", "delete": "-", "adopt": "<", "orphan": ">"}
SENSITIVE = "(sensitive)"
SUPPORTED_MAJOR = "1"


@dataclass(frozen=True)
class AttributeRow:
    name: str
    before: str | None  # None: the attribute is absent on that side
    after: str | None
    changed: bool
    sensitive: bool


@dataclass(frozen=True)
class ChangeView:
    address: str
    action: str
    symbol: str
    kind: str
    organization: str
    provider: str
    reason: str
    rows: tuple[AttributeRow, ...]


@dataclass(frozen=True)
class OrganizationPlan:
    organization: str
    counts: Mapping[str, int]
    changes: tuple[ChangeView, ...]


@dataclass(frozen=True)
class NoteView:
    address: str
    kind: str
    message: str


@dataclass(frozen=True)
class PlanView:
    source: str
    format_version: str
    summary: Mapping[str, int]
    organizations: tuple[OrganizationPlan, ...]
    notes: tuple[NoteView, ...]
    lineage: str
    serial: int

    @property
    def total(self) -> int:
        return sum(len(o.changes) for o in self.organizations)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {prefix or "value": value}
    out: dict[str, Any] = {}
    for k, v in sorted(value.items(), key=lambda kv: str(kv[0])):
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def is_sensitive(name: str) -> bool:
    return name == "credentials" or name.startswith("credentials.")


def _shown(name: str, value: Any) -> str:
    if is_sensitive(name) or value == SENSITIVE:
        return SENSITIVE
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def attribute_rows(
    before: Any, after: Any, changed: frozenset[str] = frozenset()
) -> tuple[AttributeRow, ...]:
    """Before/after side by side, one row per flattened attribute. Pure.

    Only an update marks rows as changed: in a create or a delete every row is new or gone,
    and marking them all would hide nothing but the signal.
    """
    b = _flatten(before) if before is not None else {}
    a = _flatten(after) if after is not None else {}
    is_update = before is not None and after is not None
    rows = []
    for name in sorted({*b, *a}):
        differs = is_update and (
            (name in b) != (name in a) or b.get(name) != a.get(name) or name in changed
        )
        rows.append(
            AttributeRow(
                name=name,
                before=_shown(name, b[name]) if name in b else None,
                after=_shown(name, a[name]) if name in a else None,
                changed=differs,
                sensitive=is_sensitive(name),
            )
        )
    return tuple(rows)


def _text(change: Mapping[str, Any], key: str) -> str:
    value = change.get(key)
    return value if isinstance(value, str) else ""


def _change(raw: Any, where: str) -> ChangeView:
    if (
        not isinstance(raw, Mapping)
        or not _text(raw, "address")
        or raw.get("action") not in ACTIONS
    ):
        raise InputError(
            f"{where}: each change needs an address and an action ({', '.join(ACTIONS)})"
        )
    address = _text(raw, "address")
    parts = address.split("/")
    changed = raw.get("changed")
    return ChangeView(
        address=address,
        action=raw["action"],
        symbol=SYMBOLS[raw["action"]],
        kind=_text(raw, "kind") or "connection",
        organization=_text(raw, "organization") or parts[0],
        provider=_text(raw, "provider") or (parts[1] if len(parts) > 1 else ""),
        reason=_text(raw, "reason"),
        rows=attribute_rows(
            raw.get("before"),
            raw.get("after"),
            frozenset(str(c) for c in changed) if isinstance(changed, list) else frozenset(),
        ),
    )


def _notes(raw: Any) -> tuple[NoteView, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(
        NoteView(_text(n, "address"), _text(n, "kind"), _text(n, "message"))
        for n in raw
        if isinstance(n, Mapping)
    )


def read_plan(path: Path) -> PlanView:
    """The plan page's view of a saved plan file; InputError when it is not one."""
    where = str(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(
            f"{where}: cannot read the saved plan ({type(e).__name__}); "
            "write one with `reconciler plan --out FILE`"
        ) from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("changes"), list):
        raise InputError(f"{where}: not a saved plan; write one with `reconciler plan --out FILE`")
    version = str(doc.get("format_version", ""))
    if version.split(".", 1)[0] != SUPPORTED_MAJOR:
        raise InputError(
            f"{where}: plan format {version or '(none)'} is not supported by this report "
            f"(it reads {SUPPORTED_MAJOR}.x)"
        )
    changes = [_change(c, f"{where}: changes[{i}]") for i, c in enumerate(doc["changes"])]
    by_org: dict[str, list[ChangeView]] = defaultdict(list)
    for org in doc.get("organizations") or []:
        if isinstance(org, str):
            by_org[org]
    for c in changes:
        by_org[c.organization].append(c)
    raw_state = doc.get("state")
    state: Mapping[str, Any] = raw_state if isinstance(raw_state, Mapping) else {}
    return PlanView(
        source=path.name,
        format_version=version,
        summary={a: sum(1 for c in changes if c.action == a) for a in ACTIONS},
        organizations=tuple(
            OrganizationPlan(
                organization=org,
                counts={a: sum(1 for c in cs if c.action == a) for a in ACTIONS},
                changes=tuple(cs),
            )
            for org, cs in sorted(by_org.items())
        ),
        notes=_notes(doc.get("notes")),
        lineage=str(state.get("lineage") or ""),
        serial=_serial(state.get("serial")),
    )


def _serial(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
