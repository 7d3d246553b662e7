"""Provider clients: the provider-side resources of SPEC section 8, through each provider's API.

One small module per provider behind one interface (``interface.RemoteReads`` /
``RemoteWrites``), speaking ``reconciler.core.remote`` records. Base URLs come from the catalog
or ``RECONCILER_BASE_URL_<NAME>`` exactly as for the health checks; each key is paced by a
``RateLimits`` shared by the whole run; every failure is a ``ProviderError`` without secrets.

Usage::

    limits = RateLimits()                                  # the run's buckets
    async with provider_client() as http:
        reads = open_reads(catalog.providers["stripe"], credentials, client=http, limits=limits)
        endpoints = await reads.list("webhook_endpoints")  # GET only
        writes = open_writes(catalog.providers["stripe"], credentials, client=http, limits=limits)
        created = await writes.create("webhook_endpoints", fields, address=address,
                                      idempotency_key=key)  # created.secret: Secret("whsec_…")

Also: ``refresh`` (many connections' reads in parallel, for plan and drift) and ``effects``
(``carry_out`` of one planned ``RemoteChange``, for apply).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import httpx

from reconciler.core.catalog import Provider
from reconciler.core.secret import Secret
from reconciler.health.attempts import make_client
from reconciler.health.limits import RateLimits, TokenBucket
from reconciler.health.policy import RetryPolicy
from reconciler.health.request import base_url_for
from reconciler.providers.anthropic import AnthropicUsage
from reconciler.providers.errors import ProviderError
from reconciler.providers.interface import Context, Created, RemoteReads, RemoteWrites
from reconciler.providers.postmark import PostmarkReads, PostmarkWrites
from reconciler.providers.quo import QuoReads, QuoWrites
from reconciler.providers.stripe import StripeReads, StripeWrites

READS: dict[str, type[StripeReads] | type[PostmarkReads] | type[QuoReads]] = {
    "stripe": StripeReads,
    "postmark": PostmarkReads,
    "quo": QuoReads,
}
WRITES: dict[str, type[StripeWrites] | type[PostmarkWrites] | type[QuoWrites]] = {
    "stripe": StripeWrites,
    "postmark": PostmarkWrites,
    "quo": QuoWrites,
}
MANAGED = frozenset(READS)  # providers with resources at the provider

__all__ = [
    "MANAGED",
    "AnthropicUsage",
    "Context",
    "Created",
    "ProviderError",
    "RateLimits",
    "RemoteReads",
    "RemoteWrites",
    "TokenBucket",
    "context",
    "open_reads",
    "open_usage",
    "open_writes",
    "provider_client",
]


def provider_client(policy: RetryPolicy | None = None, parallelism: int = 10) -> httpx.AsyncClient:
    """One connection pool as the health checks use (TLS verified, no proxies from the
    environment, no redirects); use it as ``async with``."""
    return make_client(policy or RetryPolicy(), parallelism)


def context(
    provider: Provider,
    credentials: Mapping[str, Secret],
    *,
    client: httpx.AsyncClient,
    limits: RateLimits,
    writes: bool = False,
    policy: RetryPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> Context:
    base, _ = base_url_for(provider, os.environ if environ is None else environ)
    return Context(
        provider=provider,
        credentials=credentials,
        client=client,
        limits=limits,
        base_url=base.rstrip("/"),
        writes=writes,
        policy=policy or RetryPolicy(),
    )


def open_reads(
    provider: Provider,
    credentials: Mapping[str, Secret],
    *,
    client: httpx.AsyncClient,
    limits: RateLimits,
    policy: RetryPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> RemoteReads:
    """A GET-only client (plan's refresh, drift, validate)."""
    cls = READS.get(provider.name)
    if cls is None:
        raise ProviderError(provider.name, "read resources", detail="nothing to manage there")
    ctx = context(
        provider, credentials, client=client, limits=limits, policy=policy, environ=environ
    )
    return cls(ctx)


def open_writes(
    provider: Provider,
    credentials: Mapping[str, Secret],
    *,
    client: httpx.AsyncClient,
    limits: RateLimits,
    policy: RetryPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> RemoteWrites:
    """A client that also creates, updates and deletes (apply, under the organization's lock)."""
    cls = WRITES.get(provider.name)
    if cls is None:
        raise ProviderError(provider.name, "change resources", detail="nothing to manage there")
    ctx = context(
        provider,
        credentials,
        client=client,
        limits=limits,
        writes=True,
        policy=policy,
        environ=environ,
    )
    return cls(ctx)


def open_usage(
    provider: Provider,
    credentials: Mapping[str, Secret],
    *,
    client: httpx.AsyncClient,
    limits: RateLimits,
    policy: RetryPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> AnthropicUsage:
    """Anthropic's month-to-date cost (needs the ``admin_key`` credential)."""
    ctx = context(
        provider, credentials, client=client, limits=limits, policy=policy, environ=environ
    )
    return AnthropicUsage(ctx)
