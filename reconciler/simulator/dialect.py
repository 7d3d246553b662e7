"""The one interface every simulated provider implements, and the dispatch shared by all.

A provider is a `Dialect`: where it expects the key (`credential`), how it says no
(`refusal`, `not_found`) and its routes. `dispatch` applies the same order of checks to every
provider: find the route, maybe fail at random (`failure_rate`), judge the key, then answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

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
    """A method and a path pattern (`re.fullmatch`); `judged` routes go through the key rules."""

    method: str
    pattern: str
    handler: Handler
    judged: bool = True


@dataclass(frozen=True)
class Dialect:
    """One simulated provider, served under `/<slug>`."""

    slug: str
    routes: tuple[Route, ...]
    credential: Callable[[SimRequest], str | None]
    refusal: Callable[[Outcome, SimRequest], Answer]
    not_found: Callable[[SimRequest], Answer]

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
    return route.handler(request, Call(key, match, state))


def bearer(request: SimRequest) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, else None."""
    value = request.header("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
