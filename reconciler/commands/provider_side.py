"""Reading the provider side of the connections a plan covers (SPEC section 8, "Drift").

``plan``, ``apply`` and ``drift`` read (GET only, in parallel, with the health checks' limits)
every connection that has provider-side resources, in the manifest or in the database: with
the manifest's key (the one apply acts with), or the stored one where the manifest names none.
What was read becomes typed changes on the plan (``reconciler.core.plan_remote``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from reconciler.commands.inputs import policy_from_env
from reconciler.core.catalog import Catalog
from reconciler.core.changes import Plan
from reconciler.core.collection import collection_paused
from reconciler.core.desired import Desired, DesiredOrganization
from reconciler.core.plan_remote import Key, Refreshed, RemoteTarget, remote_targets, with_remote
from reconciler.core.remote import is_signing_secret_field
from reconciler.core.secret import Secret
from reconciler.core.state import Observed
from reconciler.crypto import KeyRing
from reconciler.db.credentials import decrypt, managed_credentials
from reconciler.db.engine import database_url, make_engine

if TYPE_CHECKING:  # the HTTP stack, loaded once something is read
    from reconciler.providers.refresh import InterleavedReads, RefreshRequest, RefreshResult

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
    prefetch: Prefetch | None = None,
) -> Plan:
    """``base`` with the provider-side changes of the connections it covers; a conflict is
    one of ``Plan.errors`` and leaves its connection out (``keep_failed``: ``drift`` keeps it).
    ``refresh`` False compares with the database only (``plan --refresh=false``). ``down``
    collects the providers the reads found down (their breaker opened). ``during_reads``: a
    context entered while the provider side is read (apply checks meanwhile). ``prefetch``:
    the reads sent while the manifests were parsed."""
    targets = remote_targets(catalog, desired, observed, base.organizations, providers)
    if not targets:
        return base
    read = None
    if refresh:
        with during_reads() if during_reads is not None else nullcontext():
            read = read_provider_side(
                catalog,
                targets,
                desired,
                ring,
                environ,
                parallelism,
                observed.exists,
                down,
                prefetch,
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
        found = manifest_credentials(t, desired)
        if found is not None:
            out[t.key] = found
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


def manifest_credentials(target: RemoteTarget, desired: Desired) -> dict[str, Secret] | None:
    """The manifest's key of a target; None when the manifest names none for it."""
    org = desired.organizations.get(target.organization)
    if org is None:
        return None
    conn = next((c for c in org.connections if c.provider == target.provider), None)
    return dict(conn.credentials) if conn is not None and conn.credentials else None


class Prefetch:
    """The provider side read while the manifests are parsed. Each organization's reads are
    sent as soon as its manifest has been (``organization``, called by ``load_inputs``), with
    the manifest's key, so they go on while the rest is parsed and planned instead of after:
    a plan's reads took 2 s of 5 after the rest, for a thousand organizations.

    Only what the plan would send itself is taken (``read``): the same connection, kinds,
    scopes and key values; anything else is read then. The targets are worked out exactly as
    the plan's (``remote_targets``, with the state observed before parsing), so all of them
    match unless the selection or the database changes what the plan covers. No read is sent
    before the first organization with provider-side resources (a fleet without any never
    loads the HTTP stack); a read no one takes is given up at ``close``."""

    def __init__(
        self,
        catalog: Catalog,
        observed: Observed,
        *,
        environ: Mapping[str, str],
        parallelism: int,
        admits: Callable[[str], bool],
        providers: frozenset[str] | None = None,
    ) -> None:
        self.catalog = catalog
        self.observed = observed
        self.environ = environ
        self.parallelism = parallelism
        self.admits = admits
        self.providers = providers
        self.sent: dict[Key, tuple[RefreshRequest, asyncio.Task[RefreshResult]]] = {}
        self._reads: InterleavedReads | None = None

    def organization(self, org: DesiredOrganization) -> None:
        """Send the reads of one organization just parsed (and found valid)."""
        if not self.admits(org.name):
            return
        desired = Desired(organizations={org.name: org})
        for target in remote_targets(
            self.catalog, desired, self.observed, (org.name,), self.providers
        ):
            creds = manifest_credentials(target, desired)
            if creds is not None:
                request = _request(self.catalog, target, creds)
                self.sent[target.key] = (request, self._started().submit(request))
        self.pump()

    def pump(self) -> None:
        """Let the reads sent go on for a moment (called between two organizations)."""
        if self._reads is not None:
            self._reads.pump()

    def read(self, requests: list[RefreshRequest]) -> list[RefreshResult]:
        """The results of ``requests``, in order: those sent already where they are the same,
        the rest sent now."""
        if not requests:
            return []
        return self._started().wait([self._task(r) for r in requests])

    def _task(self, request: RefreshRequest) -> asyncio.Task[RefreshResult]:
        """The read of ``request``: the one sent already when it was the same, else sent now."""
        sent = self.sent.get(request.key)
        if sent is not None and _same(sent[0], request):
            return sent[1]
        return self._started().submit(request)

    def close(self) -> None:
        if self._reads is not None:
            self._reads.close()

    def _started(self) -> InterleavedReads:
        if self._reads is None:
            from reconciler.providers.refresh import InterleavedReads  # the HTTP stack

            self._reads = InterleavedReads(
                parallelism=self.parallelism,
                policy=policy_from_env(self.environ),
                environ=self.environ,
            )
        return self._reads


def _request(catalog: Catalog, target: RemoteTarget, creds: dict[str, Secret]) -> RefreshRequest:
    from reconciler.providers.refresh import RefreshRequest  # the HTTP stack

    return RefreshRequest(
        target.key, catalog.providers[target.provider], creds, target.kinds, target.scopes
    )


def _same(a: RefreshRequest, b: RefreshRequest) -> bool:
    return (
        a.key == b.key
        and a.provider.name == b.provider.name
        and a.kinds == b.kinds
        and dict(a.scopes) == dict(b.scopes)
        and dict(a.credentials) == dict(b.credentials)
    )


def read_provider_side(
    catalog: Catalog,
    targets: list[RemoteTarget],
    desired: Desired,
    ring: KeyRing,
    environ: Mapping[str, str],
    parallelism: int,
    database_exists: bool = True,
    down: set[str] | None = None,
    prefetch: Prefetch | None = None,
) -> dict[Key, Refreshed]:
    """Every target's objects, ``parallelism`` connections at a time; GET only. ``down``
    collects the providers whose reads stopped because they looked down. ``prefetch``: the
    reads sent while the manifests were parsed, taken where they are the same."""
    from reconciler.providers.refresh import refresh  # the HTTP stack

    creds = credentials_of(targets, desired, ring, environ, database_exists)
    requests = [_request(catalog, t, creds[t.key]) for t in targets if t.key in creds]
    if prefetch is not None:
        with collection_paused():
            results = prefetch.read(requests)
    else:
        results = refresh(
            requests, parallelism=parallelism, policy=policy_from_env(environ), environ=environ
        )
    log.debug("read the provider side of %d connection(s)", len(results))
    if down is not None:
        down.update(r.key[1] for r in results if r.skipped)
    return {
        r.key: Refreshed(r.objects, str(r.error) if r.error is not None else None) for r in results
    }
