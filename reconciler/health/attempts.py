"""Sending one request and retrying it under a ``RetryPolicy`` and an overall deadline.

httpx exceptions are translated here, at the boundary, into an ``Answer`` carrying only the
exception's class name: its message and its ``request`` hold the URL, whose query string may
carry a key, so neither travels further.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache

import httpx
from aiohttp import ClientError

from reconciler.health.classify import Answer, Verdict
from reconciler.health.policy import RetryBudget, RetryPolicy
from reconciler.health.request import PreparedRequest
from reconciler.health.transport import WireClient

log = logging.getLogger("reconciler.health")

MAX_BODY = 256 * 1024  # an error code or identity never needs more; a drip never gets more


@dataclass(frozen=True)
class Attempted:
    """The final verdict of a check, with how many attempts it took and the last one's time."""

    verdict: Verdict
    attempts: int
    response_ms: int
    http_status: int | None


@cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for the process: building one per client costs ~50 ms."""
    return httpx.create_ssl_context()


def make_client(policy: RetryPolicy, parallelism: int) -> WireClient:
    """One connection pool: no proxies from the environment, no redirects, TLS verified,
    over aiohttp's pool (see ``transport``)."""
    timeout = httpx.Timeout(
        connect=policy.connect_timeout,
        read=policy.read_timeout,
        write=policy.read_timeout,
        pool=policy.deadline,
    )
    limits = httpx.Limits(max_connections=parallelism, max_keepalive_connections=parallelism)
    return WireClient(verify=tls_context(), limits=limits, timeout=timeout)


async def send_prepared(
    client: httpx.AsyncClient, prepared: PreparedRequest, data: dict[str, str] | None = None
) -> Answer:
    """Send once and read at most ``MAX_BODY`` bytes; transport failures become an Answer."""
    try:
        if isinstance(client, WireClient):
            got = await client.exchange(
                prepared.method,
                prepared.url,
                params=prepared.params,
                headers=prepared.headers,
                data=data,
                limit=MAX_BODY,
            )
            return Answer(status=got.status, headers=got.headers, body=got.body)
        response = await client.send(
            client.build_request(
                prepared.method,
                prepared.url,
                params=list(prepared.params),
                headers=list(prepared.headers),
                data=data,
            ),
            stream=True,
        )
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= MAX_BODY:
                    break
        finally:
            await response.aclose()
    except httpx.HTTPError as e:
        return Answer(status=None, error=type(e).__name__)
    except (OSError, ValueError, httpx.InvalidURL, ClientError) as e:  # outside httpx's tree
        return Answer(status=None, error=type(e).__name__)
    return Answer(status=response.status_code, headers=dict(response.headers), body=bytes(body))


async def attempt_until_final(
    send: Callable[[], Awaitable[Answer]],
    judge: Callable[[Answer], tuple[Verdict, float | None]],
    policy: RetryPolicy,
    *,
    label: str,
    pace: Callable[[], Awaitable[None]] | None = None,
) -> Attempted:
    """Attempt until a verdict is final, the retry budget is spent or the deadline passes.

    ``judge`` gives the verdict of an answer and the wait the provider asked for (if any).
    ``pace`` waits for the key's turn before each attempt (the run's per-key rate limit); that
    wait is ours, not the provider's, so it moves the deadline back.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + policy.deadline
    budget = RetryBudget(policy)
    attempts = 0
    while True:
        attempts += 1
        if pace is not None:
            queued = loop.time()
            await pace()
            deadline += loop.time() - queued
        started = loop.time()
        try:
            async with asyncio.timeout(max(0.0, deadline - started)):
                answer = await send()
        except TimeoutError:
            ms = _ms(loop.time() - started)
            log.debug("%s attempt %d: deadline exceeded after %d ms", label, attempts, ms)
            return Attempted(Verdict("unreachable", detail="deadline exceeded"), attempts, ms, None)
        ms = _ms(loop.time() - started)
        verdict, hint = judge(answer)
        log.debug(
            "%s attempt %d: %s in %d ms -> %s",
            label,
            attempts,
            answer.status or answer.error,
            ms,
            verdict.outcome,
        )
        wait = budget.wait_before_retry(verdict.outcome, answer.status, hint)
        if wait is None or loop.time() + wait >= deadline:
            return Attempted(verdict, attempts, ms, answer.status)
        await asyncio.sleep(wait)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
