"""The one interface of every provider client, and what building one takes.

A provider module (``stripe``, ``postmark``, ``quo``) has a reads class (GET only: what plan,
drift and validate use) and a writes class that adds create, update and delete. Both speak in
``reconciler.core.remote`` records: the manifest's field names, never the wire's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from reconciler.core.catalog import Provider
from reconciler.core.remote import RemoteObject
from reconciler.core.secret import Secret
from reconciler.health.limits import RateLimits
from reconciler.health.policy import RetryPolicy
from reconciler.providers.errors import ProviderError
from reconciler.providers.transport import Describe, ProviderApi


@dataclass(frozen=True)
class Created:
    """A create's answer: the object, and the signing secret the provider returns only now
    (Stripe's ``whsec_…``, Quo's webhook ``key``; None for kinds without one)."""

    object: RemoteObject
    secret: Secret | None = None


class RemoteReads(Protocol):
    """GET only."""

    provider: str
    marks_ours: bool  # objects carry our marker (Stripe metadata); apply's adopt then updates

    async def list(self, kind: str, scope: tuple[str, ...] = ()) -> tuple[RemoteObject, ...]:
        """Every object of the kind the key sees (all pages), ours or not; for a kind listed
        per value of a field (``core.remote.LIST_SCOPES``), those of the ``scope`` values."""
        ...


class RemoteWrites(RemoteReads, Protocol):
    async def create(
        self,
        kind: str,
        fields: Mapping[str, Any],
        *,
        address: str,
        idempotency_key: str | None = None,
    ) -> Created:
        """Create an object with the declared ``fields``, marked as ours for ``address`` where
        the provider can carry a marker. ``idempotency_key`` is sent where the API takes one."""
        ...

    async def update(
        self, current: RemoteObject, fields: Mapping[str, Any], *, address: str
    ) -> RemoteObject:
        """Change ``current`` in place to ``fields`` (only the kind's updatable fields); also
        marks it as ours (adopting)."""
        ...

    async def delete(self, current: RemoteObject) -> None:
        """Delete it; one already gone (404) counts as deleted."""
        ...


@dataclass(frozen=True)
class Context:
    """What a provider client is built from. ``credentials`` are the connection's (revealed
    only when a request is built); ``limits`` is shared by the whole run."""

    provider: Provider
    credentials: Mapping[str, Secret]
    client: httpx.AsyncClient
    limits: RateLimits
    base_url: str
    writes: bool = False
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def api(
        self,
        credential: str,
        headers: Callable[[str], Mapping[str, str]],
        describe: Describe,
    ) -> ProviderApi:
        """The HTTP side for one credential of the connection; a ProviderError naming the
        credential when the connection has none. Requests with the key the catalog's
        ``rate_limit`` counts draw from the run's bucket for it (shared with the health
        checks)."""
        secret = self.credentials.get(credential)
        if secret is None:
            raise ProviderError(
                self.provider.name,
                "prepare a request",
                detail=f"the connection has no {credential!r} credential, which this needs",
            )
        key = secret.reveal()
        limit = self.provider.rate_limit
        if limit is not None and limit.credential != credential:
            limit = None  # another credential of the connection (Postmark's account token)
        return ProviderApi(
            provider=self.provider.name,
            base_url=self.base_url,
            client=self.client,
            headers={"User-Agent": "reconciler/1", "Accept": "application/json", **headers(key)},
            secrets=tuple(s.reveal() for s in self.credentials.values()),
            describe=describe,
            bucket=None
            if limit is None
            else self.limits.bucket(self.provider.name, key, limit.for_key(key)),
            writes=self.writes,
            policy=self.policy,
        )


def unknown_kind(provider: str, kind: str) -> ProviderError:
    return ProviderError(provider, f"use {kind}", detail=f"{provider} has no managed kind {kind!r}")
