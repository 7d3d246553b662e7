"""The simulator's mutable state, shared by all handler threads behind one lock.

Kept apart from the dialects so that they stay functions of (request, state) and so the admin
endpoints and the `Simulator` methods change the same things.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from reconciler.simulator.verdict import (
    TRANSIENT_FAILURES,
    Outcome,
    steady_outcome,
    transient_outcome,
)


@dataclass(frozen=True)
class IssuedToken:
    """An OAuth access token the demo provider handed out."""

    refresh_token: str
    expires_at: float
    scope: str


class SimState:
    """Counters, revoked keys, stored records and the seeded random source of one simulator."""

    def __init__(self, *, failure_rate: float = 0.0, seed: int = 0) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        self.failure_rate = failure_rate
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._uses: Counter[tuple[str, str]] = Counter()
        self._revoked: set[str] = set()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._records: dict[str, dict[str, dict[str, Any]]] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self._sequence = 0
        self._clock_offset = 0.0
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._replays: dict[tuple[str, str], tuple[str, float, Any]] = {}
        self.settings: dict[tuple[str, str], Any] = {}  # (what, key) -> configured value

    # -- time and per-key limits -----------------------------------------------------------------

    def now(self) -> float:
        """Wall-clock time moved by ``advance`` (to expire idempotency keys in tests)."""
        with self._lock:
            return time.time() + self._clock_offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._clock_offset += seconds

    def next_sequence(self) -> int:
        """A counter that orders created objects (newest first in listings) and numbers ids."""
        with self._lock:
            self._sequence += 1
            return self._sequence

    def admit(self, provider: str, key: str, per_second: int) -> float | None:
        """Count one request of ``key`` against its limit: None when admitted, else the seconds
        until the one-second sliding window has room again (the request is not counted)."""
        with self._lock:
            now = time.monotonic()
            window = self._windows.setdefault((provider, key), deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= per_second:
                return max(0.001, window[0] + 1.0 - now)
            window.append(now)
            return None

    def replay(self, scope: str, idempotency_key: str) -> tuple[str, Any] | None:
        """The saved (fingerprint, answer) of an idempotent request younger than 24 hours."""
        with self._lock:
            found = self._replays.get((scope, idempotency_key))
            if found is None or found[1] + 24 * 3600 <= time.time() + self._clock_offset:
                return None
            return found[0], found[2]

    def save_replay(self, scope: str, idempotency_key: str, fingerprint: str, answer: Any) -> None:
        with self._lock:
            now = time.time() + self._clock_offset
            self._replays[(scope, idempotency_key)] = (fingerprint, now, answer)

    # -- answers ---------------------------------------------------------------------------------

    def judge(self, provider: str, key: str | None) -> Outcome:
        """The outcome for one use of `key` at `provider`; counts the use for ratelimit2/flaky2."""
        if not key:
            return Outcome.MISSING
        with self._lock:
            if key in self._revoked:
                return Outcome.INVALID
            transient = transient_outcome(key)
            if transient is not None:
                self._uses[(provider, key)] += 1
                if self._uses[(provider, key)] <= TRANSIENT_FAILURES:
                    return transient
                return Outcome.SUCCESS
        return steady_outcome(key)

    def random_failure(self) -> bool:
        """True for a `failure_rate` fraction of requests (seeded, so runs are repeatable)."""
        if self.failure_rate <= 0.0:
            return False
        with self._lock:
            return self._random.random() < self.failure_rate

    def revoke(self, key: str) -> None:
        with self._lock:
            self._revoked.add(key)

    def restore(self, key: str) -> None:
        with self._lock:
            self._revoked.discard(key)

    def is_revoked(self, key: str) -> bool:
        with self._lock:
            return key in self._revoked

    # -- statistics ------------------------------------------------------------------------------

    def count(self, provider: str, path: str) -> None:
        with self._lock:
            self._requests[(provider, path)] += 1

    def request_count(self, provider: str | None = None) -> int:
        with self._lock:
            return sum(n for (p, _), n in self._requests.items() if provider in (None, p))

    def stats(self) -> dict[str, Any]:
        """Request counts per provider and path (never keys: paths carry no query string)."""
        with self._lock:
            providers: dict[str, dict[str, int]] = {}
            for (provider, path), n in sorted(self._requests.items()):
                providers.setdefault(provider, {})[path] = n
            return {"total": sum(self._requests.values()), "providers": providers}

    def reset(self) -> None:
        """Forget counters, revocations, records and tokens (between benchmark runs)."""
        with self._lock:
            self._uses.clear()
            self._revoked.clear()
            self._requests.clear()
            self._records.clear()
            self._tokens.clear()
            self._windows.clear()
            self._replays.clear()
            self.settings.clear()
            self._clock_offset = 0.0

    # -- records: objects at the providers, one namespace per provider, kind and key -----------

    def records(self, namespace: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._records.get(namespace, {}).values()]

    def record(self, namespace: str, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._records.get(namespace, {}).get(record_id)
            return dict(found) if found is not None else None

    def put_record(self, namespace: str, record_id: str, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.setdefault(namespace, {})[record_id] = dict(record)

    def delete_record(self, namespace: str, record_id: str) -> bool:
        with self._lock:
            return self._records.get(namespace, {}).pop(record_id, None) is not None

    # -- OAuth access tokens ---------------------------------------------------------------------

    def issue_token(self, access_token: str, token: IssuedToken) -> None:
        with self._lock:
            self._tokens[access_token] = token

    def live_token(self, access_token: str) -> IssuedToken | None:
        """The token if it was issued, has not expired and its refresh token is not revoked."""
        with self._lock:
            token = self._tokens.get(access_token)
            if token is None or token.expires_at <= time.time():
                return None
            if token.refresh_token in self._revoked:
                return None
            return token
