"""Running many health checks at once: bounded concurrency, one connection pool per provider.

Usage::

    results = run_checks([CheckRequest(key=("acme", "stripe"), provider=stripe,
                                       credentials={"api_key": secret}, base_url=url)],
                         parallelism=10, on_result=print)
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack

import httpx

from reconciler.health.attempts import attempt_until_final, make_client, send_prepared
from reconciler.health.breaker import SKIPPED_DETAIL, Breakers
from reconciler.health.classify import Answer, Verdict, classify, identity_from_key
from reconciler.health.limits import RateLimits, TokenBucket
from reconciler.health.policy import RetryPolicy, hinted_wait
from reconciler.health.redaction import quiet_transport_loggers
from reconciler.health.request import PreparedRequest, prepare_request, reveal
from reconciler.health.result import CheckRequest, CheckResult, build_result

log = logging.getLogger("reconciler.health")
OnResult = Callable[[CheckResult], None]
DEFAULT_POLICY = RetryPolicy()


class ClientPools:
    """One ``httpx.AsyncClient`` per provider, created on first use and closed together."""

    def __init__(self, stack: AsyncExitStack, policy: RetryPolicy, parallelism: int) -> None:
        self._stack = stack
        self._policy = policy
        self._parallelism = parallelism
        self._clients: dict[str, httpx.AsyncClient] = {}

    async def client_for(self, provider: str) -> httpx.AsyncClient:
        if provider not in self._clients:
            client = make_client(self._policy, self._parallelism)
            self._clients[provider] = await self._stack.enter_async_context(client)
        return self._clients[provider]


def bucket_for(request: CheckRequest, limits: RateLimits) -> TokenBucket | None:
    """The run's bucket for the key a check sends, when its provider documents a per-key
    limit (the catalog's ``rate_limit``); None, and nothing paced, otherwise."""
    limit = request.provider.rate_limit
    if limit is None:
        return None
    value = request.credentials.get(limit.credential)
    if value is None:
        return None
    key = reveal(value)
    return limits.bucket(request.provider.name, key, limit.for_key(key))


async def check_one(
    client: httpx.AsyncClient,
    request: CheckRequest,
    prepared: PreparedRequest,
    policy: RetryPolicy = DEFAULT_POLICY,
    bucket: TokenBucket | None = None,
) -> CheckResult:
    """Run one check to its final result; never raises for anything the network does.
    With a ``bucket``, each attempt first waits its turn for the key (not counted against the
    deadline), and a 429 holds the key for everything else of the run."""
    check = request.provider.health_check
    if not prepared.sendable:
        return build_result(
            key=request.key,
            provider=request.provider,
            outcome="invalid_credentials",
            response_ms=0,
            attempts=0,
            detail="the credential holds characters an HTTP header cannot carry",
        )
    secrets = [reveal(v) for v in request.credentials.values()]
    if log.isEnabledFor(logging.DEBUG):  # the redacted URL is worked out only to be shown
        log.debug("%s: %s %s", request.provider.name, prepared.method, prepared.redacted_url)

    def judge(answer: Answer) -> tuple[Verdict, float | None]:
        hint = hinted_wait(answer.headers, check.retry_after_headers, check.reset_headers)
        if bucket is not None and answer.status == 429:  # clamped as the retry's own wait
            wait = policy.default_rate_limit_wait if hint is None else hint
            bucket.hold(min(max(wait, 0.05), policy.max_rate_limit_wait))
        return classify(check, answer, secrets), hint

    attempted = await attempt_until_final(
        lambda: send_prepared(client, prepared),
        judge,
        policy,
        label=request.provider.name,
        pace=None if bucket is None else bucket.acquire,
    )
    identity = dict(attempted.verdict.identity)
    if attempted.verdict.outcome == "healthy":
        key_value = request.credentials.get("api_key")
        identity.update(
            identity_from_key(check.identity_from_key, reveal(key_value) if key_value else None)
        )
    return build_result(
        key=request.key,
        provider=request.provider,
        outcome=attempted.verdict.outcome,
        response_ms=attempted.response_ms,
        attempts=attempted.attempts,
        provider_code=attempted.verdict.provider_code,
        identity=identity,
        http_status=attempted.http_status,
        detail=attempted.verdict.detail,
    )


async def _guarded(
    client: httpx.AsyncClient,
    request: CheckRequest,
    prepared: PreparedRequest,
    policy: RetryPolicy,
    breakers: Breakers,
    bucket: TokenBucket | None,
) -> CheckResult:
    """``check_one`` behind the provider's breaker: not sent while it is open, and given up
    (cancelled by the breaker) when it opens while this check waits for an answer."""
    started = asyncio.get_running_loop().time()
    result = await breakers.behind(
        request.provider.name,
        lambda: check_one(client, request, prepared, policy, bucket),
        lambda r: r.failure_type == "unreachable",
    )
    if result is not None:
        return result
    return not_sent(request, round((asyncio.get_running_loop().time() - started) * 1000))


def not_sent(request: CheckRequest, response_ms: int = 0) -> CheckResult:
    """The result of a check its provider's open breaker kept from being sent."""
    return build_result(
        key=request.key,
        provider=request.provider,
        outcome="unreachable",
        response_ms=response_ms,
        attempts=0,
        detail=SKIPPED_DETAIL,
    )


async def check_many(
    requests: Iterable[CheckRequest],
    *,
    parallelism: int = 10,
    policy: RetryPolicy = DEFAULT_POLICY,
    on_result: OnResult | None = None,
    breakers: Breakers | None = None,
    limits: RateLimits | None = None,
    until: threading.Event | None = None,
    summarize: bool = True,
) -> list[CheckResult]:
    """Check every request, at most ``parallelism`` at once; results in request order.

    ``until`` (set from another thread): from then on, no request is sent; those in flight
    are answered as usual, and those not sent have no result (the caller sends them later),
    except for a provider whose breaker is open, whose every check is reported now as not
    sent. An ``until`` never set checks every request. ``summarize`` False: the caller says
    what ``breakers.summary()`` says, instead of the log at the end.

    Requests are prepared before anything is sent, so a missing credential field is a
    ValueError raised up front rather than a half-finished run. A provider that fails many
    checks in a row as unreachable is not asked again in this run (see ``breaker``). Keys
    whose provider documents a per-key limit are paced by the run's buckets (``limits``,
    default the process's), shared with the provider clients.
    """
    if parallelism < 1:
        raise ValueError("parallelism must be at least 1")
    shared = limits if limits is not None else RateLimits()
    todo = [
        (r, prepare_request(r.provider, r.base_url, r.credentials), bucket_for(r, shared))
        for r in requests
    ]
    if breakers is None:
        breakers = Breakers.for_run(parallelism)
    quiet_transport_loggers()
    slots = asyncio.Semaphore(parallelism)
    async with AsyncExitStack() as stack:
        pools = ClientPools(stack, policy, parallelism)

        def stopped(name: str) -> bool:
            return until is not None and until.is_set() and not breakers.is_open(name)

        async def run(
            request: CheckRequest, prepared: PreparedRequest, bucket: TokenBucket | None
        ) -> CheckResult | None:
            name = request.provider.name
            client = await pools.client_for(name)
            if stopped(name):
                return None
            async with slots:
                if stopped(name):
                    return None
                result = await _guarded(client, request, prepared, policy, breakers, bucket)
            if on_result is not None:
                on_result(result)
            return result

        answered = await asyncio.gather(*(run(r, p, b) for r, p, b in todo))
        results = [r for r in answered if r is not None]
    for sentence in breakers.summary() if summarize else ():
        log.warning("%s", sentence)
    return results


def run_checks(
    requests: Iterable[CheckRequest],
    *,
    parallelism: int = 10,
    policy: RetryPolicy = DEFAULT_POLICY,
    on_result: OnResult | None = None,
    breakers: Breakers | None = None,
    limits: RateLimits | None = None,
) -> list[CheckResult]:
    """``check_many`` for synchronous callers (apply, ``reconciler health``)."""
    return asyncio.run(
        check_many(
            requests,
            parallelism=parallelism,
            policy=policy,
            on_result=on_result,
            breakers=breakers,
            limits=limits,
        )
    )
