"""What each page shows, as plain records built from the catalog and the observed state.

Pure: no database, no files, no Jinja. The templates only lay these records out, so what a
user sees (which state a connection is in, which resource is the default) is decided and
tested here.
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.core.catalog import Catalog, Provider
from reconciler.core.state import Observed, ObservedConnection, ObservedInstance, ObservedResource
from reconciler.db.history import HealthPoint
from reconciler.report.chart import Chart, response_chart

# state -> (word shown, symbol shown beside it); the word is always shown, so colour is never
# the only sign of a state.
STATES: Mapping[str, tuple[str, str]] = {
    "connected": ("Connected", "●"),
    "error": ("Error", "✖"),
    "inactive": ("Inactive", "○"),
    "not_connected": ("Not connected", "◌"),
}
AUTH_LABELS = {"api_key": "API key", "oauth2": "OAuth 2.0"}
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def instance_state(instance: ObservedInstance | None) -> str:
    """The one word the catalog shows for an organization's provider. Pure.

    An inactive instance is ``inactive`` whatever its connections say (the toggle wins); an
    instance in error, or with a connection in error, is ``error``; ``connected`` needs a
    connected connection.
    """
    if instance is None:
        return "not_connected"
    if instance.status == "inactive":
        return "inactive"
    if instance.status == "error" or any(c.status == "error" for c in instance.connections):
        return "error"
    if any(c.status == "connected" for c in instance.connections):
        return "connected"
    return "not_connected"


def connection_state(instance: ObservedInstance, connection: ObservedConnection) -> str:
    if instance.status == "inactive":
        return "inactive"
    return "connected" if connection.status == "connected" else "error"


def organization_filename(organization: str) -> str:
    """A file name for an organization's page that is safe whatever the database holds."""
    if _SAFE_NAME.match(organization):
        return f"org-{organization}.html"
    code = base64.b32encode(organization.encode()).decode().rstrip("=").lower()[:40]
    return f"org-x-{code}.html"


def logo_uri(svg: str | None) -> str | None:
    """The logo as a data: URI for an <img>: an SVG shown as an image runs no script, so a
    logo from a third-party catalog cannot act on the page."""
    if not svg:
        return None
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


@dataclass(frozen=True)
class OrganizationState:
    organization: str
    href: str
    state: str


@dataclass(frozen=True)
class Card:
    name: str
    display_name: str
    description: str
    category: str
    auth: str
    depends_on: tuple[str, ...]
    logo: str | None
    initial: str
    available: bool
    states: tuple[OrganizationState, ...]
    search_text: str


def catalog_cards(catalog: Catalog, observed: Observed) -> list[Card]:
    """One card per provider, by category then display name (as ``reconciler catalog``)."""
    organizations = sorted({org for org, _ in observed.instances})
    cards = []
    for p in sorted(catalog.providers.values(), key=lambda p: (p.category, p.display_name)):
        states = tuple(
            OrganizationState(
                org,
                organization_filename(org),
                instance_state(observed.instances.get((org, p.name))),
            )
            for org in organizations
        )
        cards.append(
            Card(
                name=p.name,
                display_name=p.display_name,
                description=p.description,
                category=p.category,
                auth=AUTH_LABELS.get(p.auth, p.auth),
                depends_on=tuple(_display(catalog, d) for d in p.depends_on),
                logo=logo_uri(catalog.logos.get(p.name)),
                initial=p.display_name[:1].upper(),
                available=p.active,
                states=states,
                search_text=" ".join((p.name, p.display_name, p.description, p.category)).lower(),
            )
        )
    return cards


def _display(catalog: Catalog, name: str) -> str:
    p = catalog.providers.get(name)
    return p.display_name if p else name


@dataclass(frozen=True)
class ResourceItem:
    label: str
    details: str
    default: bool
    managed_by: str


@dataclass(frozen=True)
class ResourceGroup:
    kind: str
    title: str
    items: tuple[ResourceItem, ...]


@dataclass(frozen=True)
class ConnectionView:
    user: str
    status: str
    state: str
    managed_by: str
    identity: tuple[tuple[str, str], ...]
    last_checked: datetime | None
    last_status: str | None
    last_message: str
    last_response_ms: int | None
    failing_since: datetime | None
    chart: Chart | None
    history: tuple[HealthPoint, ...] = ()


@dataclass(frozen=True)
class AppView:
    provider: str
    display_name: str
    category: str
    logo: str | None
    initial: str
    state: str
    instance_status: str
    managed_by: str
    connections: tuple[ConnectionView, ...]
    resources: tuple[ResourceGroup, ...]


@dataclass(frozen=True)
class OrganizationPage:
    organization: str
    filename: str
    apps: tuple[AppView, ...]
    counts: Mapping[str, int] = field(default_factory=dict)


def _plain(value: Any) -> str:
    """A value as a reader wants it: strings bare, lists of strings comma-separated."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return json.dumps(value, ensure_ascii=False)


def _resource_item(r: ObservedResource, provider: Provider | None) -> ResourceItem:
    kind = provider.resource_kind(r.kind) if provider else None
    skip = {"default", kind.identity if kind and kind.identity else ""}
    if r.identity == r.kind and set(r.spec) == {"value"}:
        return ResourceItem(_plain(r.spec["value"]), "", r.is_default, r.managed_by)
    label = r.identity if r.identity != r.kind else ""
    details = ", ".join(f"{k}: {_plain(v)}" for k, v in sorted(r.spec.items()) if k not in skip)
    return ResourceItem(label or details, details if label else "", r.is_default, r.managed_by)


def _resource_groups(
    resources: Sequence[ObservedResource], provider: Provider | None
) -> tuple[ResourceGroup, ...]:
    by_kind: dict[str, list[ResourceItem]] = defaultdict(list)
    for r in resources:
        by_kind[r.kind].append(_resource_item(r, provider))
    return tuple(
        ResourceGroup(kind, kind.replace("_", " ").capitalize(), tuple(items))
        for kind, items in sorted(by_kind.items())
    )


def _connection_view(
    instance: ObservedInstance, c: ObservedConnection, history: Sequence[HealthPoint]
) -> ConnectionView:
    h = c.last_health
    return ConnectionView(
        user=c.user_email,
        status=c.status,
        state=connection_state(instance, c),
        managed_by=c.managed_by,
        identity=tuple((str(k), _plain(v)) for k, v in sorted(c.identity.items())),
        last_checked=h.checked_at if h else None,
        last_status=h.status if h else None,
        last_message=h.message if h else "",
        last_response_ms=h.response_ms if h else None,
        failing_since=h.failing_since if h else None,
        chart=response_chart(history),
        history=tuple(history),
    )


def organization_pages(
    catalog: Catalog, observed: Observed, history: Mapping[int, Sequence[HealthPoint]]
) -> list[OrganizationPage]:
    """The "Connected Apps" view of every organization that has instances."""
    pages = []
    for org in sorted({org for org, _ in observed.instances}):
        apps = []
        for inst in observed.of(org):
            p = catalog.providers.get(inst.provider)
            apps.append(
                AppView(
                    provider=inst.provider,
                    display_name=p.display_name if p else inst.provider,
                    category=p.category if p else "",
                    logo=logo_uri(catalog.logos.get(inst.provider)),
                    initial=(p.display_name if p else inst.provider)[:1].upper(),
                    state=instance_state(inst),
                    instance_status=inst.status,
                    managed_by=inst.managed_by,
                    connections=tuple(
                        _connection_view(inst, c, history.get(c.id, ())) for c in inst.connections
                    ),
                    resources=_resource_groups(inst.resources, p),
                )
            )
        apps.sort(key=lambda a: a.display_name.lower())
        pages.append(
            OrganizationPage(
                organization=org,
                filename=organization_filename(org),
                apps=tuple(apps),
                counts=dict(Counter(a.state for a in apps)),
            )
        )
    return pages
