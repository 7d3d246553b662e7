"""Rendering a Plan as text (Terraform style), JSON (the documented contract) and Markdown.

Rendering returns strings; only the CLI prints. Credential values are never part of a Plan, so
no renderer can show one: they appear as ``(sensitive)``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from reconciler.core.plan import Action, Change, Plan

FORMAT_VERSION = "1.0"
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


def _value(v: Any) -> str:
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix or "value": d}
    out: dict[str, Any] = {}
    for k, v in sorted(d.items()):
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def _attribute_lines(change: Change, indent: str) -> list[str]:
    before = _flatten(change.before) if change.before is not None else {}
    after = _flatten(change.after) if change.after is not None else {}
    lines = []
    width = max((len(k) for k in {*before, *after}), default=0)
    for key in sorted({*before, *after}):
        b, a = before.get(key), after.get(key)
        name = key.ljust(width)
        if change.before is None:
            lines.append(f"{indent}+ {name} = {_show(a)}")
        elif change.after is None:
            lines.append(f"{indent}- {name} = {_show(b)}")
        elif key not in before:
            lines.append(f"{indent}+ {name} = {_show(a)}")
        elif key not in after:
            lines.append(f"{indent}- {name} = {_show(b)}")
        elif a != b or (key.startswith("credentials.") and key in change.changed):
            note = "  (value changed)" if key in change.changed and a == b else ""
            lines.append(f"{indent}~ {name} = {_show(b)} -> {_show(a)}{note}")
    return lines


def _show(v: Any) -> str:
    return "(sensitive)" if v == "(sensitive)" else _value(v)


def render_text(plan: Plan, *, overrides: dict[str, str] | None = None) -> str:
    out: list[str] = []
    for provider, url in sorted((overrides or {}).items()):
        out.append(
            f"Note: {provider} health checks go to {url} (RECONCILER_BASE_URL_"
            f"{provider.upper()} is set)."
        )
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
    return "\n".join(out) + "\n"


def plan_to_json(plan: Plan, **extra: Any) -> dict[str, Any]:
    s = plan.summary
    return {
        "format_version": FORMAT_VERSION,
        "changes": [c.to_json() for c in plan.changes],
        "summary": {k: s[k] for k in ("create", "update", "delete", "adopt", "orphan")},
        "notes": [
            {"address": n.address, "kind": n.kind, "message": n.message, "since": n.since}
            for n in plan.notes
        ],
        "organizations": list(plan.organizations),
        "state": {"lineage": plan.lineage, "serial": plan.serial},
        **extra,
    }


def render_json(plan: Plan, **extra: Any) -> str:
    return (
        json.dumps(plan_to_json(plan, **extra), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    )


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
    warnings += [
        f"- :warning: {provider} health checks go to `{url}` (RECONCILER_BASE_URL_"
        f"{provider.upper()} is set)"
        for provider, url in sorted((overrides or {}).items())
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
