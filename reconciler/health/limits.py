"""Per-key request rates, shared by everything that uses one key in one run.

Quo allows 10 requests per second per key and Stripe 25 in test mode (100 live), counted over
any second (the catalog's ``rate_limit``). A token bucket paces each key: it refills at 70 % of
the limit and holds at most 10 % of it, so no one-second window ever sees more than 80 % of
the limit, and requests that arrive late or bunched still stay under it,
whatever else of ours uses the key at the same time: health checks, plan's refresh reads and
apply's writes all draw from it. Loop-agnostic (a thread lock, monotonic time): the buckets
serve every asyncio loop and thread of a run.

A run is the process: every ``RateLimits()`` shares the process's buckets, so a caller that
builds its own (apply's provider calls, the health checks, plan's refresh) still paces each key
together with the others. The worker processes of ``--workers N`` each have their own buckets,
and each paces every key at its share of the limit (``share_among(N)``), so together they stay
under it when organizations of different workers share a key.

Usage::

    limits = RateLimits()                     # the run's buckets
    await limits.bucket("quo", key, 10).acquire()
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable

# Requests reach the provider a little later than their slot (an event loop busy with other
# work delays some more than others), so the pacing keeps a margin of 20 % under the limit
# for that jitter: at most 80 % of it is granted in any second.
FILL_SHARE = 0.7
BURST_SHARE = 0.1


class TokenBucket:
    """Paces requests to ``per_second`` over any one-second window."""

    __slots__ = ("_clock", "_last", "_lock", "_tokens", "burst", "per_second", "rate")

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_second <= 0:
            raise ValueError("a rate limit must be positive")
        self.per_second = per_second
        self.rate = per_second * FILL_SHARE
        self.burst = max(1.0, per_second * BURST_SHARE)
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a slot; the seconds to wait before using it (0 when one is free now)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def hold(self, seconds: float) -> None:
        """The provider said 429 with a wait: nobody of ours uses the key before it is over."""
        with self._lock:
            self._tokens = min(self._tokens, -seconds * self.rate)

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait > 0:
            await asyncio.sleep(wait)


_RUN_BUCKETS: dict[tuple[str, str], TokenBucket] = {}
_RUN_LOCK = threading.Lock()
_SHARE = [1.0]  # of each key's limit, for this process's buckets


def share_among(processes: int) -> None:
    """This process is one of ``processes`` that may use the same keys at once: from now on
    its buckets pace each key at that share of the limit (1: the whole limit again)."""
    with _RUN_LOCK:
        _SHARE[0] = 1.0 / max(1, processes)
        _RUN_BUCKETS.clear()


class RateLimits:
    """The buckets of the run, one per provider and key (the key is held only as a digest).
    ``private=True``: buckets of its own, shared with nobody (tests of the pacing itself)."""

    def __init__(self, *, private: bool = False) -> None:
        self._buckets = {} if private else _RUN_BUCKETS
        self._lock = threading.Lock() if private else _RUN_LOCK
        self._private = private

    def bucket(self, provider: str, key: str, per_second: float) -> TokenBucket:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        with self._lock:
            found = self._buckets.get((provider, digest))
            if found is None:
                share = 1.0 if self._private else _SHARE[0]
                found = self._buckets[(provider, digest)] = TokenBucket(per_second * share)
            return found
