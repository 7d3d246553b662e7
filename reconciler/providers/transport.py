"""HTTP to one provider with one key: where to send, pacing, bounded retries, safe errors.

Where requests go is decided as for the health checks (``reconciler.health.base_url_for``):
the catalog's origin, or the operator's ``RECONCILER_BASE_URL_<NAME>``; never a manifest.
A client opened for reads sends GET only: plan, drift and validate use no other.

Retries: a 429 waits what the provider asks (``Retry-After`` seconds or date; 1 s when it
names none), clamped per wait and in total by the ``RetryPolicy``, and holds the key's bucket
meanwhile so our other requests with that key wait too. Connection errors and 502/503/504/529
are retried with backoff only when repeating the request is harmless: a GET, a DELETE, or a
POST carrying an Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from reconciler.health.limits import TokenBucket
from reconciler.health.policy import JITTER, RetryPolicy, hinted_wait
from reconciler.health.redaction import quiet_transport_loggers
from reconciler.health.transport import WireClient
from reconciler.providers.errors import ProviderError, scrub

log = logging.getLogger("reconciler.providers")

MAX_BODY = 4 * 1024 * 1024
Describe = Callable[[Any], tuple[str | None, str]]  # error body -> (code, message)
# The clients whose transport loggers were quieted: once per client is enough (the redacting
# filter stays on the loggers), and a plan's reads build one ProviderApi per connection.
_QUIETED: weakref.WeakSet[httpx.AsyncClient] = weakref.WeakSet()


@dataclass(frozen=True)
class Reply:
    """A successful answer: status, parsed JSON body (None when empty), headers."""

    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ProviderApi:
    """One provider, one key. ``headers`` carry the revealed key: never log or show them;
    ``secrets`` are the values scrubbed from every error."""

    provider: str
    base_url: str
    client: httpx.AsyncClient
    headers: Mapping[str, str]
    secrets: tuple[str, ...]
    describe: Describe
    bucket: TokenBucket | None = None
    writes: bool = False
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.client not in _QUIETED:
            quiet_transport_loggers()
            _QUIETED.add(self.client)

    async def get(self, path: str, operation: str, **params: Any) -> Reply:
        return await self.call("GET", path, operation, params=params or None)

    async def call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: list[tuple[str, str]] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send until an answer is final; the answer of a 2xx, else a ``ProviderError``."""
        if method != "GET" and not self.writes:
            raise RuntimeError(f"a read-only {self.provider} client cannot send {method}")
        extra = dict(headers or {})
        repeatable = method in ("GET", "DELETE") or "Idempotency-Key" in extra
        content = None if body is None else json.dumps(body).encode("utf-8")
        if content is not None:
            extra.setdefault("Content-Type", "application/json")
        rng = JITTER
        waited, limited, failures = 0.0, 0, 0
        while True:
            if self.bucket is not None:
                await self.bucket.acquire()
            log.debug("%s: %s %s (%s)", self.provider, method, path, operation)
            try:
                status, answer_headers, raw = await self._send(
                    method, path, params, data, content, extra
                )
            except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as e:
                failures += 1
                if repeatable and failures < self.policy.max_attempts:
                    await asyncio.sleep(_backoff(self.policy, failures, rng))
                    continue
                raise ProviderError(self.provider, operation, code=type(e).__name__) from None
            if status == 429:
                hint = hinted_wait(answer_headers, ["Retry-After"], ["X-Rate-Limit-Reset"])
                wait = min(
                    max(hint if hint is not None else self.policy.default_rate_limit_wait, 0.05),
                    self.policy.max_rate_limit_wait,
                )
                limited += 1
                if (
                    limited > self.policy.max_rate_limit_retries
                    or waited + wait > self.policy.max_total_rate_limit_wait
                ):
                    raise self._error(operation, status, raw)
                waited += wait
                if self.bucket is not None:
                    self.bucket.hold(wait)
                await asyncio.sleep(wait)
                continue
            if status in self.policy.retry_statuses and repeatable:
                failures += 1
                if failures < self.policy.max_attempts:
                    await asyncio.sleep(_backoff(self.policy, failures, rng))
                    continue
            if not 200 <= status < 300:
                raise self._error(operation, status, raw)
            return Reply(status, _json(raw), answer_headers)

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        data: list[tuple[str, str]] | None,
        content: bytes | None,
        extra: Mapping[str, str],
    ) -> tuple[int, dict[str, str], bytes]:
        """One request: status, headers (``dict(httpx.Headers)``), at most ``MAX_BODY`` of the
        body. Over our own client, without httpx's models (``health.transport.WireClient``)."""
        form = dict(_grouped(data)) if data is not None else None
        merged = {**self.headers, **extra}
        if isinstance(self.client, WireClient):
            got = await self.client.exchange(
                method,
                self.base_url + path,
                params=params,
                headers=list(merged.items()),
                data=form,
                content=content,
            )
            return got.status, got.headers, got.body[:MAX_BODY]
        response = await self.client.request(
            method, self.base_url + path, params=params, data=form, content=content, headers=merged
        )
        return response.status_code, dict(response.headers), response.content[:MAX_BODY]

    def _error(self, operation: str, status: int, raw: bytes) -> ProviderError:
        parsed = _json(raw)
        code, message = self.describe(parsed) if parsed is not None else (None, "")
        return ProviderError(
            self.provider,
            operation,
            status=status,
            code=scrub(code, self.secrets) if code else None,
            detail=scrub(message, self.secrets),
        )


def _grouped(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Form pairs as httpx takes them (a name with several values gets a list)."""
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _backoff(policy: RetryPolicy, failures: int, rng: random.Random) -> float:
    ceiling = min(policy.backoff_cap, policy.backoff_base * 2 ** (failures - 1))
    return ceiling * rng.uniform(0.5, 1.0)
