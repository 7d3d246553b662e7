"""Reading the provider side of the connections a plan covers (SPEC section 8, "Drift").

``plan``, ``apply`` and ``drift`` read (GET only, in parallel, with the health checks' limits)
every connection that has provider-side resources, in the manifest or in the database: with
the manifest's key (the one apply acts with), or the stored one where the manifest names none.
What was read becomes typed changes on the plan (``reconciler.core.plan_remote``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext

from sqlalchemy.orm import Session

from reconciler.commands.inputs import policy_from_env
from reconciler.core.catalog import Catalog
from reconciler.core.changes import Plan
from reconciler.core.desired import Desired
from reconciler.core.plan_remote import Key, Refreshed, RemoteTarget, remote_targets, with_remote
from reconciler.core.remote import is_signing_secret_field
from reconciler.core.secret import Secret
from reconciler.core.state import Observed
from reconciler.crypto import KeyRing
from reconciler.db.credentials import decrypt, managed_credentials
from reconciler.db.engine import database_url, make_engine

log = logging.getLogger("reconciler.plan")


def with_provider_side(
    catalog: Catalog,
    desired: Desired,
    observed: Observed,
    base: Plan,
    *,
    ring: KeyRing,
    environ: Mapping[str, str],
    refresh: bool = True,
    parallelism: int = 10,
    providers: frozenset[str] | None = None,
    keep_failed: bool = False,
    down: set[str] | None = None,
    during_reads: Callable[[], AbstractContextManager[object]] | None = None,
) -> Plan:
    """``base`` with the provider-side changes of the connections it covers; a conflict is
    one of ``Plan.errors`` and leaves its connection out (``keep_failed``: ``drift`` keeps it).
    ``refresh`` False compares with the database only (``plan --refresh=false``). ``down``
    collects the providers the reads found down (their breaker opened). ``during_reads``: a
    context entered while the provider side is read (apply checks meanwhile)."""
    targets = remote_targets(catalog, desired, observed, base.organizations, providers)
    if not targets:
        return base
    read = None
    if refresh:
        with during_reads() if during_reads is not None else nullcontext():
            read = read_provider_side(
                catalog, targets, desired, ring, environ, parallelism, observed.exists, down
            )
    return with_remote(catalog, desired, observed, base, targets, read, keep_failed=keep_failed)


def credentials_of(
    targets: list[RemoteTarget],
    desired: Desired,
    ring: KeyRing,
    environ: Mapping[str, str],
    database_exists: bool,
) -> dict[Key, dict[str, Secret]]:
    """The key each target is read with: the manifest's, which apply stores and then acts
    with (a new key may be another account at the provider); else (``credentials: keep``, a
    connection the manifest no longer lists) the stored one, decrypted here, never logged."""
    out: dict[Key, dict[str, Secret]] = {}
    for t in targets:
        org = desired.organizations.get(t.organization)
        conn = next((c for c in org.connections if c.provider == t.provider), None) if org else None
        if conn is not None and conn.credentials:
            out[t.key] = dict(conn.credentials)
    stored = [t for t in targets if t.key not in out]
    if stored and database_exists:
        # the command's one engine for this URL (make_engine), closed when the command ends
        with Session(make_engine(database_url(environ))) as s:
            for t in stored:
                rows = [
                    c
                    for c in managed_credentials(s, t.organization, t.provider)
                    if not is_signing_secret_field(c.field)
                ]
                if rows:
                    out[t.key] = decrypt(ring, rows)
    return out


def read_provider_side(
    catalog: Catalog,
    targets: list[RemoteTarget],
    desired: Desired,
    ring: KeyRing,
    environ: Mapping[str, str],
    parallelism: int,
    database_exists: bool = True,
    down: set[str] | None = None,
) -> dict[Key, Refreshed]:
    """Every target's objects, ``parallelism`` connections at a time; GET only. ``down``
    collects the providers whose reads stopped because they looked down."""
    from reconciler.providers.refresh import RefreshRequest, refresh  # the HTTP stack

    creds = credentials_of(targets, desired, ring, environ, database_exists)
    requests = [
        RefreshRequest(t.key, catalog.providers[t.provider], creds[t.key], t.kinds, t.scopes)
        for t in targets
        if t.key in creds
    ]
    results = refresh(
        requests, parallelism=parallelism, policy=policy_from_env(environ), environ=environ
    )
    log.debug("read the provider side of %d connection(s)", len(results))
    if down is not None:
        down.update(r.key[1] for r in results if r.skipped)
    return {
        r.key: Refreshed(r.objects, str(r.error) if r.error is not None else None) for r in results
    }
