"""Writing the report: gather the data, render each page with Jinja2, write the files.

The site is self-contained: the stylesheet and the one small filter script are inlined, logos
are data: URIs, and each page carries a Content-Security-Policy that allows exactly those
inline blocks (by hash) and nothing from anywhere else.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from reconciler.commands.inputs import open_database
from reconciler.core.catalog import load_catalog
from reconciler.core.state import Observed
from reconciler.report.entries import AuditPage, audit_entries, health_history
from reconciler.report.incidents import IncidentRow, open_incidents
from reconciler.report.pages import (
    STATES,
    catalog_cards,
    organization_pages,
)
from reconciler.report.planfile import ACTIONS, PlanView, read_plan

# Pages a previous run may have written that this run may not write again; removed so a
# report folder never shows a stale plan or a deleted organization.
_OWNED_PATTERNS = ("org-*.html", "plan.html")


@dataclass(frozen=True)
class Inline:
    """An inline block (stylesheet or script) and the CSP source that allows it."""

    text: Markup
    source: str


def _inline(name: str) -> Inline:
    text = (resources.files("reconciler.report") / "static" / name).read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return Inline(Markup(text), f"'sha256-{digest}'")  # noqa: S704 - our own shipped file


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("reconciler.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["when"] = _when
    env.filters["iso"] = _iso
    env.globals["STATES"] = STATES
    env.globals["ACTIONS"] = ACTIONS
    return env


def _when(value: datetime | None) -> str:
    if value is None:
        return "never"
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(value: datetime) -> str:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat(timespec="seconds")


@dataclass(frozen=True)
class SiteData:
    observed: Observed
    audit: AuditPage
    history: Mapping[int, Any]
    incidents: Sequence[IncidentRow] = ()


def _gather(environ: Mapping[str, str]) -> SiteData:
    engine, observed = open_database(environ)
    if engine is None or not observed.exists:
        return SiteData(observed, AuditPage(), {})
    ids = [c.id for i in observed.instances.values() for c in i.connections]
    return SiteData(
        observed, audit_entries(engine), health_history(engine, ids), open_incidents(engine)
    )


def render_site(
    catalog_dir: str | None,
    environ: Mapping[str, str],
    *,
    plan: PlanView | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """Every page of the report, file name -> HTML. Reads; writes nothing."""
    catalog = load_catalog(catalog_dir)
    data = _gather(environ)
    orgs = organization_pages(catalog, data.observed, data.history)
    env = _environment()
    style, script = _inline("report.css"), _inline("filter.js")
    common = {
        "style": style,
        "script": script,
        "organizations": orgs,
        "has_plan": plan is not None,
        "generated": _when(now or datetime.now(UTC)),
        "database_exists": data.observed.exists,
    }

    def page(template: str, current: str, **context: Any) -> str:
        return env.get_template(template).render(**common, current=current, **context)

    cards = catalog_cards(catalog, data.observed)
    pages = {
        "index.html": page(
            "index.html",
            "index.html",
            provider_count=len(cards),
            audit=data.audit,
            plan=plan,
            incidents=data.incidents,
        ),
        "catalog.html": page(
            "catalog.html",
            "catalog.html",
            cards=cards,
            categories=sorted({c.category for c in cards}),
        ),
        "audit.html": page(
            "audit.html",
            "audit.html",
            audit=data.audit,
            audit_organizations=sorted({r.organization for r in data.audit.rows}),
            audit_actions=sorted({r.action for r in data.audit.rows}),
        ),
    }
    for o in orgs:
        mine = [i for i in data.incidents if i.organization == o.organization]
        pages[o.filename] = page("organization.html", o.filename, org=o, incidents=mine)
    if plan is not None:
        pages["plan.html"] = page("plan.html", "plan.html", plan=plan)
    return pages


def _write(path: Path, text: str) -> None:
    """Write through a temporary file, so an interrupted run leaves no half page."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(
    out: Path,
    catalog_dir: str | None,
    environ: Mapping[str, str],
    *,
    plan_file: str | Path | None = None,
) -> list[Path]:
    """Write the static site into ``out`` (created when missing); the written files.

    The plan file is read first, so a bad one fails before anything is written.
    """
    plan = read_plan(Path(plan_file)) if plan_file is not None else None
    pages = render_site(catalog_dir, environ, plan=plan)
    out.mkdir(parents=True, exist_ok=True)
    for pattern in _OWNED_PATTERNS:
        for stale in out.glob(pattern):
            if stale.name not in pages and stale.is_file():
                stale.unlink()
    written = []
    for name, html in sorted(pages.items()):
        path = out / name
        _write(path, html)
        written.append(path)
    return written
