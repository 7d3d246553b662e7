"""Building the pure core's values in tests: desired and observed state, fingerprints, plans.

One place for the test helpers of ``tests/core`` and ``tests/apply``: each builder takes only
what a test varies, with the defaults of a healthy, manifest-managed connection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.core.catalog import Catalog, load_catalog
from reconciler.core.desired import Desired, DesiredConnection, DesiredOrganization, DesiredResource
from reconciler.core.errors import Diagnostics
from reconciler.core.plan import Plan, plan
from reconciler.core.secret import Secret
from reconciler.core.state import (
    Observed,
    ObservedConnection,
    ObservedCredential,
    ObservedHealth,
    ObservedInstance,
    ObservedResource,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OWNER = "ops@acme.example"
KEY_ID = "k1"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def catalog(name: str | None = None) -> Catalog:
    """The shipped catalog, or a fixture catalog (``catalog_deps``: invoicing depends on
    ledger)."""
    return load_catalog(None if name is None else FIXTURES / name)


def variable(org: str, provider: str, field: str) -> str:
    return f"{org}_{provider}_{field}".upper()


def secret_value(org: str, provider: str, field: str, version: int = 1) -> str:
    return f"{org}-{provider}-{field}-v{version}"


def fingerprint(value: str) -> str:
    """A stand-in for the keyed fingerprint: the planner only compares them."""
    return "fp-" + hashlib.sha256(value.encode()).hexdigest()[:16]


def connection(
    org: str,
    provider: str,
    *,
    owner: str = OWNER,
    fields: Iterable[str] = ("api_key",),
    active: bool = True,
    adopt: bool = False,
    deletion_policy: str = "delete",
    prevent_destroy: bool = False,
    resources: Iterable[DesiredResource] = (),
    version: int = 1,
) -> DesiredConnection:
    """A desired connection whose credentials are version ``version`` of their secrets."""
    fields = tuple(fields)
    return DesiredConnection(
        organization=org,
        provider=provider,
        owner=owner,
        credentials={
            f: Secret(secret_value(org, provider, f, version), variable(org, provider, f))
            for f in fields
        },
        credential_vars={f: variable(org, provider, f) for f in fields},
        active=active,
        resources=tuple(resources),
        adopt=adopt,
        deletion_policy=deletion_policy,  # type: ignore[arg-type]
        prevent_destroy=prevent_destroy,
        file=f"manifests/{org}.yaml",
        line=1,
    )


def resource(
    kind: str, identity: str | None = None, *, is_default: bool = False, **spec: Any
) -> DesiredResource:
    return DesiredResource(kind, identity or kind, dict(sorted(spec.items())), is_default)


def desired(
    *orgs: tuple[str, Iterable[DesiredConnection]], allow_empty: Iterable[str] = ()
) -> Desired:
    return Desired(
        organizations={
            name: DesiredOrganization(
                name=name,
                members={OWNER: frozenset({"admin"})},
                connections=tuple(conns),
                allow_empty=name in set(allow_empty),
                file=f"manifests/{name}.yaml",
                line=1,
            )
            for name, conns in orgs
        }
    )


def stored(
    *,
    owner: str = OWNER,
    fields: Iterable[str] = ("api_key",),
    org: str = "acme",
    provider: str = "stripe",
    version: int = 1,
    status: str = "connected",
    managed_by: str = "manifest",
    deletion_policy: str = "delete",
    prevent_destroy: bool = False,
    health: str | None = None,
    id: int = 1,
) -> ObservedConnection:
    """A stored connection whose credentials were made from version ``version`` of the
    secrets ``connection`` names."""
    creds = {
        f: ObservedCredential(
            id * 100 + i,
            f,
            KEY_ID,
            fingerprint(secret_value(org, provider, f, version)),
            KEY_ID,
        )
        for i, f in enumerate(fields)
    }
    last = (
        ObservedHealth(health, "auth", "401 Unauthorized", 12, NOW, NOW)
        if health is not None
        else None
    )
    return ObservedConnection(
        id=id,
        user_email=owner,
        status=status,
        managed_by=managed_by,
        deletion_policy=deletion_policy,
        prevent_destroy=prevent_destroy,
        credentials=creds,
        last_health=last,
    )


def stored_resource(
    kind: str,
    identity: str | None = None,
    *,
    is_default: bool = False,
    managed_by: str = "manifest",
    **spec: Any,
) -> ObservedResource:
    return ObservedResource(1, kind, identity or kind, dict(spec), is_default, managed_by)


def instance(
    org: str,
    provider: str,
    *connections: ObservedConnection,
    status: str = "active",
    managed_by: str = "manifest",
    resources: Iterable[ObservedResource] = (),
) -> ObservedInstance:
    return ObservedInstance(
        id=1,
        organization=org,
        provider=provider,
        status=status,
        managed_by=managed_by,
        connections=connections,
        resources=tuple(resources),
    )


def observed(*instances: ObservedInstance, serial: int = 7) -> Observed:
    return Observed(
        instances={(i.organization, i.provider): i for i in instances},
        lineage="lineage-1",
        serial=serial,
    )


def fingerprints_of(d: Desired) -> dict[tuple[str, str, str, str], dict[str, str]]:
    """What ``commands.fingerprints`` computes, with the stand-in fingerprint."""
    return {
        (org.name, c.provider, c.owner, f): {KEY_ID: fingerprint(s.reveal())}
        for org in d.organizations.values()
        for c in org.connections
        for f, s in c.credentials.items()
    }


def make_plan(
    d: Desired,
    o: Observed | None = None,
    *,
    cat: Catalog | None = None,
    providers: frozenset[str] | None = None,
) -> tuple[Plan, Diagnostics]:
    return plan(cat or catalog(), d, o or observed(), fingerprints_of(d), providers=providers)


def rows(p: Plan) -> list[tuple[str, str, tuple[str, ...]]]:
    """A plan as its truth-table rows: (address, action, changed)."""
    return [(c.address, c.action.value, c.changed_names()) for c in p.changes]


def messages(diags: Diagnostics) -> str:
    return "\n".join(str(d) for d in diags.errors)


def as_mapping(value: object) -> Mapping[str, Any]:
    assert isinstance(value, Mapping)
    return value
