"""Reading the provider side of many connections at once (plan's refresh, drift). GET only.

Usage::

    results = refresh([RefreshRequest(("acme", "stripe"), provider, credentials)],
                      parallelism=10)
    results[0].objects["webhook_endpoints"]   # tuple[RemoteObject, ...]
    results[0].error                          # ProviderError | None (nothing read then)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx

from reconciler.core.catalog import Provider
from reconciler.core.remote import RemoteObject, realized_kinds
from reconciler.core.secret import Secret
from reconciler.health.limits import RateLimits
from reconciler.health.policy import RetryPolicy
from reconciler.providers import READS, open_reads, provider_client
from reconciler.providers.errors import ProviderError


@dataclass(frozen=True)
class RefreshRequest:
    key: tuple[str, str]  # (organization, provider)
    provider: Provider
    credentials: Mapping[str, Secret]
    kinds: tuple[str, ...] | None = None  # None: every kind the credentials can read


@dataclass(frozen=True)
class RefreshResult:
    key: tuple[str, str]
    objects: Mapping[str, tuple[RemoteObject, ...]] = field(default_factory=dict)
    error: ProviderError | None = None


async def refresh_one(
    request: RefreshRequest,
    *,
    client: httpx.AsyncClient,
    limits: RateLimits,
    policy: RetryPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> RefreshResult:
    """Every wanted kind of one connection; a failure is returned, never raised."""
    kinds = request.kinds
    if kinds is None:
        kinds = tuple(k.name for k in realized_kinds(request.provider, request.credentials))
    if request.provider.name not in READS or not kinds:
        return RefreshResult(request.key)
    try:
        reads = open_reads(
            request.provider,
            request.credentials,
            client=client,
            limits=limits,
            policy=policy,
            environ=environ,
        )
        found = {kind: await reads.list(kind) for kind in kinds}
    except ProviderError as e:
        return RefreshResult(request.key, error=e)
    return RefreshResult(request.key, found)


def refresh(
    requests: Iterable[RefreshRequest],
    *,
    parallelism: int = 10,
    limits: RateLimits | None = None,
    policy: RetryPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[RefreshResult]:
    """Read every connection's provider side, ``parallelism`` at a time, in request order."""
    todo = list(requests)
    shared = limits or RateLimits()

    async def main() -> list[RefreshResult]:
        gate = asyncio.Semaphore(max(1, parallelism))
        async with provider_client(policy, parallelism) as client:

            async def one(request: RefreshRequest) -> RefreshResult:
                async with gate:
                    return await refresh_one(
                        request, client=client, limits=shared, policy=policy, environ=environ
                    )

            return list(await asyncio.gather(*(one(r) for r in todo)))

    return asyncio.run(main()) if todo else []
