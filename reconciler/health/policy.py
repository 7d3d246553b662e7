"""Time limits and retries: when to try again, and how long to wait first.

Usage::

    policy = RetryPolicy(deadline=5.0, max_total_rate_limit_wait=2.0)
    run_checks(requests, policy=policy)

A 429 (or a rule's ``rate_limited``, e.g. Google's OVER_QUERY_LIMIT in a 200) waits what the
provider asks (``Retry-After`` seconds or HTTP date, or an epoch reset header), clamped per wait
and bounded in total. Connection errors and 502/503/504/529 back off exponentially with jitter.
A rejected key (401/403) is never retried: asking again cannot make it valid and may lock it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

# One generator for every check's jitter: seeding one per check from os.urandom cost more
# than the rest of deciding its waits.
JITTER = random.Random()


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    deadline: float = 30.0  # whole check, attempts and waits included
    max_attempts: int = 4  # for connection errors and retryable statuses
    backoff_base: float = 0.5
    backoff_cap: float = 4.0
    retry_statuses: frozenset[int] = field(default_factory=lambda: frozenset({502, 503, 504, 529}))
    max_rate_limit_wait: float = 10.0  # one wait is clamped to this
    max_total_rate_limit_wait: float = 20.0
    default_rate_limit_wait: float = 1.0  # when the provider names no wait
    max_rate_limit_retries: int = 10

    def __post_init__(self) -> None:
        if self.deadline <= 0 or self.max_attempts < 1:
            raise ValueError("a retry policy needs a positive deadline and at least one attempt")


def hinted_wait(
    headers: Mapping[str, str],
    retry_after_names: Iterable[str],
    reset_names: Iterable[str],
    now: float | None = None,
) -> float | None:
    """Seconds the provider asks us to wait, from ``Retry-After``-style or reset headers."""
    now = time.time() if now is None else now
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in retry_after_names:
        value = lowered.get(name.lower())
        if value is not None and (wait := _retry_after(value.strip(), now)) is not None:
            return wait
    for name in reset_names:
        value = lowered.get(name.lower())
        if value is not None and (wait := _reset(value.strip(), now)) is not None:
            return wait
    return None


def _retry_after(value: str, now: float) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def _reset(value: str, now: float) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    # Epoch seconds (Mapbox); a small number is taken as seconds from now.
    return max(0.0, number - now) if number > 1e9 else max(0.0, number)


@dataclass
class RetryBudget:
    """What one check has spent of its policy; decides the next wait or that it is over."""

    policy: RetryPolicy
    rng: random.Random = field(default_factory=lambda: JITTER)
    transient_retries: int = 0
    rate_limit_retries: int = 0
    rate_limit_waited: float = 0.0

    def wait_before_retry(
        self, outcome: str, status: int | None, hint: float | None
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when the result is final."""
        if outcome == "rate_limited":
            return self._rate_limit_wait(hint)
        if outcome == "unreachable" and (status is None or status in self.policy.retry_statuses):
            return self._backoff()
        return None

    def _rate_limit_wait(self, hint: float | None) -> float | None:
        p = self.policy
        wait = p.default_rate_limit_wait if hint is None else hint
        wait = min(max(wait, 0.05), p.max_rate_limit_wait)
        if (
            self.rate_limit_retries >= p.max_rate_limit_retries
            or self.rate_limit_waited + wait > p.max_total_rate_limit_wait
        ):
            return None
        self.rate_limit_retries += 1
        self.rate_limit_waited += wait
        return wait

    def _backoff(self) -> float | None:
        p = self.policy
        if self.transient_retries + 1 >= p.max_attempts:
            return None
        ceiling = min(p.backoff_cap, p.backoff_base * 2**self.transient_retries)
        self.transient_retries += 1
        return ceiling * self.rng.uniform(0.5, 1.0)
