"""The one interface every simulated provider implements, and the dispatch shared by all.

A provider is a `Dialect`: where it expects the key (`credential`), how it says no
(`refusal`, `not_found`) and its routes. `dispatch` applies the same order of checks to every
provider: find the route, maybe fail at random (`failure_rate`), judge the key, then answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from reconciler.simulator.state import SimState
from reconciler.simulator.verdict import Outcome
from reconciler.simulator.wire import Answer, SimRequest


@dataclass(frozen=True)
class Call:
    """What a route handler gets besides the request: the accepted key, path groups, state."""

    key: str | None
    match: re.Match[str]
    state: SimState


Handler = Callable[[SimRequest, Call], Answer]


@dataclass(frozen=True)
class Route:
    """A method and a path pattern (`re.fullmatch`); `judged` routes go through the key rules;
    `limited` ones count against the provider's per-key rate limit.

    The resource APIs are limited, and Quo's phone-number list (its health check as well).
    The other health-check routes stay unlimited because tests and benchmarks check fleets of
    organizations that share one key from several processes (each with its own buckets).
    """

    method: str
    pattern: str
    handler: Handler
    judged: bool = True
    limited: bool = False


@dataclass(frozen=True)
class Dialect:
    """One simulated provider, served under `/<slug>`."""

    slug: str
    routes: tuple[Route, ...]
    credential: Callable[[SimRequest], str | None]
    refusal: Callable[[Outcome, SimRequest], Answer]
    not_found: Callable[[SimRequest], Answer]
    # requests per second a key may send (None: unlimited), and the answer beyond it, given the
    # seconds until the window has room
    per_key_limit: Callable[[str], int | None] | None = None
    throttled: Callable[[SimRequest, float], Answer] | None = None

    def with_routes(self, routes: tuple[Route, ...]) -> Dialect:
        """The same provider serving more routes (its resource APIs, kept in their own module)."""
        return replace(self, routes=self.routes + routes)

    def find(self, request: SimRequest) -> tuple[Route, re.Match[str]] | None:
        for route in self.routes:
            match = re.fullmatch(route.pattern, request.path)
            if match is not None and route.method == request.method:
                return route, match
        return None


def dispatch(dialect: Dialect, request: SimRequest, state: SimState) -> Answer:
    """Answer one request the way the provider would."""
    state.count(dialect.slug, request.path)
    found = dialect.find(request)
    if found is None:
        return dialect.not_found(request)
    route, match = found
    if state.random_failure():
        return dialect.refusal(Outcome.UNAVAILABLE, request)
    key = None
    if route.judged:
        key = dialect.credential(request)
        outcome = state.judge(dialect.slug, key)
        if outcome is not Outcome.SUCCESS:
            return dialect.refusal(outcome, request)
        wait = _over_limit(dialect, state, key) if route.limited else None
        if wait is not None:
            if dialect.throttled is None:
                return dialect.refusal(Outcome.RATE_LIMITED, request)
            return dialect.throttled(request, wait)
    return route.handler(request, Call(key, match, state))


def _over_limit(dialect: Dialect, state: SimState, key: str | None) -> float | None:
    """Seconds to wait when ``key`` is over its provider's per-key rate limit, else None."""
    if dialect.per_key_limit is None or not key:
        return None
    limit = dialect.per_key_limit(key)
    return None if limit is None else state.admit(dialect.slug, key, limit)


def bearer(request: SimRequest) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, else None."""
    value = request.header("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
