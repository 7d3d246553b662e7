"""The plan page's view of a saved plan (``reconciler plan --out FILE``).

The file is read by the core's plan codec into a Plan, like ``apply --plan`` reads it; the
``saved`` section is never looked at. The counts are made from the changes, so the page always
agrees with itself. A typed change holds no credential value, so a hand-edited plan cannot put
a secret on the page: the codec reads only the credentials' field names.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.core.changes import Action, Change, Plan
from reconciler.core.planfile_read import plan_from_json, read_document
from reconciler.core.render import AttributeRow, attribute_rows

ACTIONS = tuple(a.value for a in Action)


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


def change_view(c: Change) -> ChangeView:
    return ChangeView(
        address=c.address,
        action=c.action.value,
        symbol=c.action.symbol,
        kind=c.kind.value,
        organization=c.organization,
        provider=c.provider,
        reason=c.reason,
        rows=attribute_rows(c),
    )


def plan_view(plan: Plan, *, source: str, format_version: str) -> PlanView:
    """What the plan page shows of a Plan. Pure."""
    by_org: dict[str, list[ChangeView]] = defaultdict(list)
    for org in plan.organizations:
        by_org[org]
    for c in plan.changes:
        by_org[c.organization].append(change_view(c))
    return PlanView(
        source=source,
        format_version=format_version,
        summary=dict(plan.summary),
        organizations=tuple(
            OrganizationPlan(
                organization=org,
                counts={a: sum(1 for c in cs if c.action == a) for a in ACTIONS},
                changes=tuple(cs),
            )
            for org, cs in sorted(by_org.items())
        ),
        notes=tuple(NoteView(n.address, n.kind, n.message) for n in plan.notes),
        lineage=plan.lineage,
        serial=plan.serial,
    )


def read_plan(path: Path) -> PlanView:
    """The plan page's view of a saved plan file; InputError when it is not one."""
    plan, version = plan_from_json(read_document(path), str(path))
    return plan_view(plan, source=path.name, format_version=version)
