"""Reading the provider side of many connections at once (plan's refresh, drift). GET only.

Every connection, and every kind of a connection (Quo's numbers and webhooks, Postmark's
webhooks and senders), is read at the same time, at most ``parallelism`` reads at once; the
per-key buckets still pace what shares a key.

Usage::

    results = refresh([RefreshRequest(("acme", "stripe"), provider, credentials)],
                      parallelism=10)
    results[0].objects["webhook_endpoints"]   # tuple[RemoteObject, ...]
    results[0].error                          # ProviderError | None (nothing read then)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field

import httpx

from reconciler.core.catalog import Provider
from reconciler.core.collection import collection_paused
from reconciler.core.remote import RemoteObject, realized_kinds
from reconciler.core.secret import Secret
from reconciler.health.breaker import Breakers
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
    # kind -> the values its list is read for (Postmark: message streams); absent: read whole
    scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RefreshResult:
    key: tuple[str, str]
    objects: Mapping[str, tuple[RemoteObject, ...]] = field(default_factory=dict)
    error: ProviderError | None = None
    skipped: bool = False  # not sent: the provider's breaker was open (it looked down)


async def refresh_one(
    request: RefreshRequest,
    *,
    client: httpx.AsyncClient,
    limits: RateLimits,
    policy: RetryPolicy | None = None,
    environ: Mapping[str, str] | None = None,
    gate: asyncio.Semaphore | None = None,
) -> RefreshResult:
    """Every wanted kind of one connection, the kinds read concurrently (each holding a place
    of ``gate``, when given); a failure is returned, never raised (the first kind's failure,
    in kind order, when several fail)."""
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
    except ProviderError as e:
        return RefreshResult(request.key, error=e)

    async def read(kind: str) -> tuple[RemoteObject, ...]:
        place: AbstractAsyncContextManager[object] = gate if gate is not None else nullcontext()
        async with place:
            return await reads.list(kind, request.scopes.get(kind, ()))

    if len(kinds) == 1:  # the common case: no gather, so no task and future of its own
        try:
            return RefreshResult(request.key, {kinds[0]: await read(kinds[0])})
        except ProviderError as e:
            return RefreshResult(request.key, error=e)
    # every read runs to its end (none left behind with an unretrieved failure)
    answers = await asyncio.gather(*(read(k) for k in kinds), return_exceptions=True)
    found: dict[str, tuple[RemoteObject, ...]] = {}
    for kind, answer in zip(kinds, answers, strict=True):
        if isinstance(answer, ProviderError):
            return RefreshResult(request.key, error=answer)
        if isinstance(answer, BaseException):
            raise answer
        found[kind] = answer
    return RefreshResult(request.key, found)


class Reads:
    """One run's reads on one client: at most ``parallelism`` at once, the per-key buckets
    shared, each provider behind its breaker. Made inside the event loop that uses it."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        parallelism: int = 10,
        limits: RateLimits | None = None,
        policy: RetryPolicy | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.gate = asyncio.Semaphore(max(1, parallelism))
        self.limits = limits or RateLimits()
        self.policy = policy
        self.environ = environ
        self.breakers = Breakers.for_run(parallelism, environ)

    async def read(self, request: RefreshRequest) -> RefreshResult:
        return await _guarded(request, self._read, self.breakers)

    async def _read(self, request: RefreshRequest) -> RefreshResult:
        return await refresh_one(
            request,
            client=self.client,
            limits=self.limits,
            policy=self.policy,
            environ=self.environ,
            gate=self.gate,
        )


def refresh(
    requests: Iterable[RefreshRequest],
    *,
    parallelism: int = 10,
    limits: RateLimits | None = None,
    policy: RetryPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[RefreshResult]:
    """Read every connection's provider side, ``parallelism`` reads at a time (a connection's
    kinds too); results in request order. A provider that does not answer (``threshold``
    connections in a row: no answer, or 5xx) is not read again in this call: its remaining
    connections fail at once as not sent, instead of each waiting out its deadline."""
    todo = list(requests)

    async def main() -> list[RefreshResult]:
        async with provider_client(policy, parallelism) as client:
            reads = Reads(
                client, parallelism=parallelism, limits=limits, policy=policy, environ=environ
            )
            return list(await asyncio.gather(*(reads.read(r) for r in todo)))

    if not todo:
        return []
    with collection_paused():
        return asyncio.run(main())


class InterleavedReads:
    """Reads that go on between the caller's own steps (plan reads each organization's
    provider side as soon as its manifest is parsed, while it parses the rest): an event loop
    of the caller's thread, which runs only when ``pump``ed, between two steps, or while
    ``wait`` waits. The reads share what ``refresh``'s share: one client, ``parallelism``, the
    buckets, the breakers. ``close`` gives up the reads not done yet.

    Not a thread: a thread doing the reads while the caller parses cost 1 s more CPU for 2,000
    reads (each answer took the interpreter from the parse and gave it back) and saved almost
    no time (bench/RESULTS.md). A pump costs tens of microseconds and an answer waits at most
    one step (about a millisecond of parsing) to be read."""

    def __init__(
        self,
        *,
        parallelism: int = 10,
        policy: RetryPolicy | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._tasks: list[asyncio.Task[RefreshResult]] = []

        async def start() -> tuple[httpx.AsyncClient, Reads]:
            client = await provider_client(policy, parallelism).__aenter__()
            return client, Reads(client, parallelism=parallelism, policy=policy, environ=environ)

        try:
            self._client, self._reads = self._loop.run_until_complete(start())
        except BaseException:
            self._loop.close()
            raise

    def submit(self, request: RefreshRequest) -> asyncio.Task[RefreshResult]:
        """Start one read: sent at the next ``pump`` or ``wait``."""
        task = self._loop.create_task(self._reads.read(request))
        self._tasks.append(task)
        return task

    def pump(self) -> None:
        """Let the reads go on for a moment: what has arrived is read, what can be sent is."""
        self._loop.call_soon(self._loop.stop)
        self._loop.run_forever()

    def wait(self, tasks: Iterable[asyncio.Task[RefreshResult]]) -> list[RefreshResult]:
        """The results of these reads, in order, once every one of them is done."""
        return list(self._loop.run_until_complete(asyncio.gather(*tasks)))

    def close(self) -> None:
        if self._loop.is_closed():
            return

        async def stop() -> None:
            left = [t for t in self._tasks if not t.done()]
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
            await self._client.__aexit__(None, None, None)

        try:
            self._loop.run_until_complete(stop())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()

    def __enter__(self) -> InterleavedReads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unreachable(error: ProviderError | None) -> bool:
    """No answer (refused, timed out) or a server error: the provider looks down."""
    return error is not None and (error.status is None or error.status >= 500)


async def _guarded(
    request: RefreshRequest,
    read: Callable[[RefreshRequest], Awaitable[RefreshResult]],
    breakers: Breakers,
) -> RefreshResult:
    """``read`` behind the provider's breaker: not sent while it is open, given up when it
    opens while this read waits for an answer (as the health checks' breaker does)."""
    result = await breakers.behind(
        request.provider.name, lambda: read(request), lambda r: unreachable(r.error)
    )
    if result is not None:
        return result
    return RefreshResult(
        request.key,
        skipped=True,
        error=ProviderError(
            request.provider.name,
            "list",
            code="not sent",
            detail="it did not answer earlier reads of this run (circuit breaker open)",
        ),
    )
