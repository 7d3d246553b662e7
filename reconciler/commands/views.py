"""status (the "Connected Apps" view) and catalog, as rich tables rendered to strings."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reconciler.commands.incidentviews import incidents_text, open_incident_rows
from reconciler.commands.inputs import Selection, keyring, open_database
from reconciler.core.catalog import Catalog, load_catalog
from reconciler.core.endpoints import base_url_for
from reconciler.core.render import describe_overrides
from reconciler.core.state import Observed
from reconciler.db.history import History, health_history


def _render(*tables: Any) -> str:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=140, force_terminal=False, color_system=None)
    for t in tables:
        console.print(t)
    return buf.getvalue()


def status_json(
    catalog_dir: str | None, environ: Mapping[str, str], sel: Selection
) -> list[dict[str, Any]]:
    catalog = load_catalog(catalog_dir)
    engine, observed = open_database(environ)
    history: dict[int, History] = {}
    if engine is not None and observed.exists:
        with Session(engine) as s:
            history = health_history(s)
    incidents = open_incident_rows(engine if observed.exists else None)
    out = []
    for (org, provider), inst in sorted(observed.instances.items()):
        if not sel.admits(org) or (sel.providers and provider not in sel.providers):
            continue
        p = catalog.providers.get(provider)
        out.append(
            {
                "organization": org,
                "provider": provider,
                "display_name": p.display_name if p else provider,
                "status": inst.status,
                "managed_by": inst.managed_by,
                "incidents": incidents.get((org, provider), []),
                "connections": [
                    {
                        "user": c.user_email,
                        "status": c.status,
                        "managed_by": c.managed_by,
                        "credentials": sorted(c.credentials),
                        "identity": dict(c.identity),
                        "history": _history(history.get(c.id)),
                        "last_health": None
                        if c.last_health is None
                        else {
                            "status": c.last_health.status,
                            "failure_type": c.last_health.failure_type,
                            "message": c.last_health.message,
                            "response_ms": c.last_health.response_ms,
                            "checked_at": c.last_health.checked_at.isoformat(timespec="seconds"),
                            "failing_since": c.last_health.failing_since.isoformat(
                                timespec="seconds"
                            )
                            if c.last_health.failing_since
                            else None,
                        },
                    }
                    for c in inst.connections
                ],
                "resources": [
                    {
                        "kind": r.kind,
                        "identity": r.identity,
                        "default": r.is_default,
                        "spec": dict(r.spec),
                    }
                    for r in inst.resources
                ],
            }
        )
    if engine is not None and observed.exists and out:
        _with_provider_facts(catalog, observed, engine, environ, out)
    return out


def _with_provider_facts(
    catalog: Catalog,
    observed: Observed,
    engine: Engine,
    environ: Mapping[str, str],
    rows: list[dict[str, Any]],
) -> None:
    """What Postmark says of the senders (with ``account_token``) and Anthropic of the
    month's cost (with ``admin_key``): SPEC section 8. GET only."""
    from reconciler.commands.provider_status import provider_facts

    shown = {(r["organization"], r["provider"]) for r in rows}
    instances = [i for k, i in sorted(observed.instances.items()) if k in shown]
    facts = provider_facts(catalog, instances, engine, lambda: keyring(environ), environ)
    for r in rows:
        got = facts.get((r["organization"], r["provider"]), {})
        if r["provider"] == "postmark":
            senders = got.get("senders")
            for x in r["resources"]:
                if x["kind"] != "sender_emails":
                    continue
                if "error" in got:
                    x["at_provider"] = f"not read at Postmark: {got['error']}"
                elif senders is None:
                    x["at_provider"] = "not verified at Postmark (no account_token)"
                elif x["identity"].casefold() not in senders:
                    x["at_provider"] = "not at Postmark"
                else:
                    confirmed = senders[x["identity"].casefold()]
                    x["at_provider"] = "confirmed" if confirmed else "pending confirmation"
        usage = got.get("usage")
        if usage is not None:
            r["month_to_date_usd"] = usage["month_to_date_usd"]
            r["budget_usd"] = usage["budget_usd"]
            r["usage_alert"] = usage["alert"]
            r["usage"] = usage
        elif "error" in got and r["provider"] == "anthropic":
            r["usage"] = {"error": got["error"]}


def status_text(catalog_dir: str | None, environ: Mapping[str, str], sel: Selection) -> str:
    from rich.table import Table  # only the text views render with rich (not --format json)

    rows = status_json(catalog_dir, environ, sel)
    catalog = load_catalog(catalog_dir)
    overrides = {}
    for name, p in sorted(catalog.providers.items()):
        url, overridden = base_url_for(p, environ)
        if overridden:
            overrides[name] = url
    notes = [f"Note: {describe_overrides(overrides)}."] if overrides else []
    if not rows:
        return "\n".join([*notes, "No connections yet. Run `reconciler apply`."]) + "\n"
    tables = []
    for org in sorted({r["organization"] for r in rows}):
        t = Table(title=f"Connected Apps: {org}", title_justify="left")
        for col in (
            "provider",
            "instance",
            "connection",
            "owner",
            "last check",
            "ms (last/p50/p95)",
            "failing",
        ):
            t.add_column(col)
        details: list[str] = []
        for r in (x for x in rows if x["organization"] == org):
            blank = {
                "user": "-",
                "status": "-",
                "last_health": None,
                "managed_by": "",
                "identity": {},
                "history": _history(None),
            }
            for c in r["connections"] or [blank]:
                h, hist = c["last_health"], c["history"]
                owner = c["user"] + (
                    "" if c["managed_by"] in ("manifest", "") else f" ({c['managed_by']})"
                )
                last = f"{h['checked_at'][:19].replace('T', ' ')} {h['status']}" if h else "never"
                times = "-" if not h else f"{h['response_ms']}/{hist['p50_ms']}/{hist['p95_ms']}"
                failing = "-"
                if hist["consecutive_failures"] and h:
                    failing = f"{hist['consecutive_failures']}x since {h['failing_since'] or '?'}"
                    details.append(f"  {org}/{r['provider']}: {h['message']}")
                t.add_row(
                    r["display_name"],
                    _dot(r["status"]),
                    _dot(c["status"]),
                    owner,
                    last,
                    times,
                    failing,
                )
                if c["identity"]:
                    account = ", ".join(f"{k} {v}" for k, v in sorted(c["identity"].items()))
                    details.append(f"  {org}/{r['provider']} account: {account}")
            for x in r["resources"]:
                at = f", {x['at_provider']}" if x.get("at_provider") else ""
                details.append(f"  {org}/{r['provider']} {_resource_label(x)}{at}")
            usage = r.get("usage")
            if usage is not None:
                said = (
                    usage.get("message")
                    or usage.get("error")
                    or (f"${usage['month_to_date_usd']:.2f} this month")
                )
                details.append(f"  {org}/{r['provider']} usage: {said}")
        t.caption = "\n".join(details) if details else None
        t.caption_justify = "left"
        tables.append(t)
    text = incidents_text(rows) + _render(*tables)
    return ("\n".join(notes) + "\n" if notes else "") + text


def _resource_label(x: Mapping[str, Any]) -> str:
    """``billing@acme.example (default)``; single-valued kinds show their value."""
    if x["identity"] != x["kind"]:
        return f"{x['kind']}: {x['identity']}{' (default)' if x['default'] else ''}"
    spec = {k: v for k, v in x["spec"].items() if k != "default"}
    if list(spec) == ["value"]:
        return f"{x['kind']}: {spec['value']}"
    return f"{x['kind']}: " + ", ".join(f"{k}={v}" for k, v in sorted(spec.items()))


def _history(h: History | None) -> dict[str, Any]:
    if h is None:
        return {"checks": 0, "consecutive_failures": 0, "p50_ms": None, "p95_ms": None}
    return {
        "checks": h.checks,
        "consecutive_failures": h.consecutive_failures,
        "p50_ms": h.p50_ms,
        "p95_ms": h.p95_ms,
    }


def _dot(status: str) -> str:
    sign = {"active": "●", "connected": "●", "inactive": "○", "error": "✖"}.get(status, "")
    return f"{sign} {status}".strip()


def catalog_json(
    catalog_dir: str | None, category: str | None, query: str | None
) -> list[dict[str, Any]]:
    catalog = load_catalog(catalog_dir)
    out = []
    for p in sorted(catalog.providers.values(), key=lambda p: (p.category, p.display_name)):
        if category and p.category != category:
            continue
        if query and query.lower() not in f"{p.name} {p.display_name} {p.description}".lower():
            continue
        out.append(
            {
                "name": p.name,
                "display_name": p.display_name,
                "category": p.category,
                "description": p.description,
                "auth": p.auth,
                "active": p.active,
                "depends_on": list(p.depends_on),
                "resources": [k.name for k in p.resources] + (["active"] if p.toggle else []),
            }
        )
    return out


def catalog_text(catalog_dir: str | None, category: str | None, query: str | None) -> str:
    from rich.table import Table

    rows = catalog_json(catalog_dir, category, query)
    if not rows:
        return "No provider matches.\n"
    t = Table(title="Provider catalog", title_justify="left")
    for col in ("name", "display name", "category", "auth", "status", "resources", "description"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["name"],
            r["display_name"],
            r["category"],
            r["auth"],
            "available" if r["active"] else "inactive",
            ", ".join(r["resources"]) or "-",
            r["description"],
        )
    return _render(t)
