"""Rendering a Plan as text (Terraform style), JSON (the documented contract) and Markdown.

Rendering returns strings; only the CLI prints. Credential values are never part of a Plan, so
no renderer can show one: they appear as ``(sensitive)``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.core.changes import Action, Change, Plan
from reconciler.core.planfile import dumps, plan_to_json, view
from reconciler.core.secret import SENSITIVE

MARKDOWN_LIMIT = 65_000

_VERB = {
    Action.CREATE: "will be created",
    Action.UPDATE: "will be updated in place",
    Action.DELETE: "will be destroyed",
    Action.ADOPT: "will be adopted (taken under management)",
    Action.ORPHAN: "will be orphaned (left in place, no longer managed)",
}


def summary_line(plan: Plan) -> str:
    s = plan.summary
    if not plan.has_changes:
        return "No changes. The database matches the manifests."
    line = f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete."
    extra = [f"{s[a]} to {a}" for a in ("adopt", "orphan") if s[a]]
    return line + (" " + ", ".join(extra) + "." if extra else "")


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, Mapping):
        return {prefix or "value": d}
    out: dict[str, Any] = {}
    for k, v in sorted(d.items(), key=lambda kv: str(kv[0])):
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def is_sensitive(name: str) -> bool:
    return name == "credentials" or name.startswith("credentials.")


# one encoder for every value shown (json.dumps with options builds a new one per call)
_ENCODE = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode


def _shown(name: str, value: Any) -> str:
    if is_sensitive(name) or value == SENSITIVE:
        return SENSITIVE
    return _ENCODE(value)


@dataclass(frozen=True)
class AttributeRow:
    """One flattened attribute of a change, before and after, as every renderer shows it."""

    name: str
    before: str | None  # None: the attribute is absent on that side
    after: str | None
    changed: bool
    sensitive: bool
    value_changed: bool = False  # equal as shown, different in fact (a credential's value)


def attribute_rows(change: Change) -> tuple[AttributeRow, ...]:
    """Before/after side by side, one row per flattened attribute. Pure.

    Only an update marks rows as changed: in a create or a delete every row is new or gone,
    and marking them all would hide nothing but the signal.
    """
    b_view, a_view = view(change.before), view(change.after)
    b = _flatten(b_view) if b_view is not None else {}
    a = _flatten(a_view) if a_view is not None else {}
    is_update = b_view is not None and a_view is not None
    named = set(change.changed_names()) if is_update else set()
    rows = []
    for name in sorted({*b, *a}):
        same = name in b and name in a and b[name] == a[name]
        differs = is_update and (not same or name in named)
        rows.append(
            AttributeRow(
                name=name,
                before=_shown(name, b[name]) if name in b else None,
                after=_shown(name, a[name]) if name in a else None,
                changed=differs,
                sensitive=is_sensitive(name),
                value_changed=differs and same,
            )
        )
    return tuple(rows)


def _attribute_lines(change: Change, indent: str) -> list[str]:
    if change.before is None or change.after is None:  # a create or a delete: one side, whole
        mark, side = (
            ("+", view(change.after)) if change.before is None else ("-", view(change.before))
        )
        flat = _flatten(side) if side is not None else {}
        width = max(map(len, flat), default=0)
        return [f"{indent}{mark} {n.ljust(width)} = {_shown(n, flat[n])}" for n in sorted(flat)]
    rows = attribute_rows(change)
    width = max((len(r.name) for r in rows), default=0)
    lines = []
    for r in rows:
        name = r.name.ljust(width)
        if r.before is None:
            lines.append(f"{indent}+ {name} = {r.after}")
        elif r.after is None:
            lines.append(f"{indent}- {name} = {r.before}")
        elif r.changed:
            note = "  (value changed)" if r.value_changed else ""
            lines.append(f"{indent}~ {name} = {r.before} -> {r.after}{note}")
    return lines


def describe_overrides(overrides: Mapping[str, str]) -> str:
    """One sentence for every RECONCILER_BASE_URL_<NAME> in effect (not one line each): the
    demo and the tests point all seven providers at one simulator."""
    names = sorted(overrides)
    if len(names) == 1:
        (name,) = names
        return (
            f"{name} health checks and API calls go to {overrides[name]} "
            f"(RECONCILER_BASE_URL_{name.upper()} is set)"
        )
    urls = {n: overrides[n].rstrip("/") for n in names}
    bases = {u.removesuffix("/" + n) for n, u in urls.items()}
    if len(bases) == 1 and all(u.endswith("/" + n) for n, u in urls.items()):
        where = f"{bases.pop()}/<provider>"
    else:
        where = "; ".join(f"{n} to {overrides[n]}" for n in names)
    return (
        f"health checks and API calls of {', '.join(names)} go to {where} "
        "(RECONCILER_BASE_URL_<NAME> is set)"
    )


def render_text(plan: Plan, *, overrides: dict[str, str] | None = None) -> str:
    out: list[str] = []
    if overrides:
        out.append(f"Note: {describe_overrides(overrides)}.")
    for n in plan.notes:
        out.append(f"Note: {n.message}")
    if out:
        out.append("")
    if plan.has_changes:
        out.append("Reconciler will perform the following actions:")
        out.append("")
        for c in plan.changes:
            out.append(f"  # {c.address} {_VERB[c.action]} ({c.reason})")
            out.append(f"  {c.action.symbol} {c.address}")
            out.extend(_attribute_lines(c, "      "))
            out.append("")
    out.append(summary_line(plan))
    if plan.errors:
        out.append(left_out_line(plan))
    return "\n".join(out) + "\n"


def left_out_line(plan: Plan) -> str:
    """Which connections an error left out of the plan (the errors themselves go to stderr)."""
    failed = sorted({e.connection for e in plan.errors})
    names = ", ".join(failed)
    return f"Left out of the plan because of errors (nothing is written for them): {names}."


def render_json(plan: Plan, *, overrides: Mapping[str, str] | None = None) -> str:
    """``plan --format json``: the documented plan format (docs/plan-format.md)."""
    return dumps(plan_to_json(plan, overrides=overrides or {}))


def render_markdown(
    plan: Plan, *, limit: int = MARKDOWN_LIMIT, overrides: dict[str, str] | None = None
) -> str:
    """A pull-request comment: warnings first, a summary table, changes per organization.

    Stays under ``limit`` characters: whole lines are dropped from the end of the change
    listing and a closing line says how many changes were left out.
    """
    head: list[str] = ["## Reconciler plan", ""]
    warnings = [
        f"- :warning: **{c.address}** will be destroyed ({c.reason})" for c in plan.deletions()
    ]
    warnings += [
        f"- :warning: {n.message}"
        for n in plan.notes
        if n.kind in ("unmanaged", "unhealthy", "empty_manifest")
    ]
    if overrides:
        warnings.append(f"- :warning: {describe_overrides(overrides)}")
    warnings += [
        f"- :x: **{e.address}**: {e.message} (its connection is left out)" for e in plan.errors
    ]
    if warnings:
        head += ["### Warnings", "", *warnings, ""]
    head.append(f"**{summary_line(plan)}**")
    head.append("")
    by_org: dict[str, list[Change]] = defaultdict(list)
    for c in plan.changes:
        by_org[c.organization].append(c)
    if by_org:
        head += [
            "| organization | create | update | delete | adopt | orphan |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for org, cs in sorted(by_org.items()):
            n = {a: sum(1 for c in cs if c.action is a) for a in Action}
            head.append(
                f"| {org} | {n[Action.CREATE]} | {n[Action.UPDATE]} | {n[Action.DELETE]} "
                f"| {n[Action.ADOPT]} | {n[Action.ORPHAN]} |"
            )
        head.append("")
    body: list[tuple[list[str], int]] = []  # (lines, number of changes they show)
    for org, cs in sorted(by_org.items()):
        body.append(
            ([f"<details><summary><b>{org}</b>: {len(cs)} change(s)</summary>", "", "```diff"], 0)
        )
        for c in cs:
            lines = [f"{c.action.symbol} {c.address}  # {c.reason}"]
            lines += [ln.replace("      ", "    ", 1) for ln in _attribute_lines(c, "  ")]
            body.append((lines, 1))
        body.append((["```", "", "</details>", ""], 0))
    text = "\n".join(head) + "\n"
    total = len(plan.changes)
    shown = 0
    reserve = 200
    in_block = False
    for lines, count in body:
        chunk = "\n".join(lines) + "\n"
        if len(text) + len(chunk) + reserve > limit:
            break
        text += chunk
        shown += count
        if lines[0].startswith("<details>"):
            in_block = True
        elif lines[0] == "```":
            in_block = False
    if shown < total:
        if in_block:
            text += "```\n\n</details>\n"
        text += (
            f"\n_{total - shown} more change(s) not shown: the plan is too long for a "
            "comment. Run `reconciler plan` to see all of it._\n"
        )
    return text
