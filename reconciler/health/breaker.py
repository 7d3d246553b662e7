"""A circuit breaker per provider, for one run: an outage is learned once, not once per check.

When ``threshold`` checks of one provider in a row end ``unreachable`` (timeouts, refused
connections, 5xx after their retries), the breaker opens: that provider's checks that have not
started yet are not sent, those still waiting for an answer are given up, and all of them are
reported ``unreachable`` with the exact SPEC message. Without this, a black-holed provider costs
every one of its checks the full deadline. Other providers are not affected, and nothing is
remembered after the run: the next run tries again.

Usage::

    breakers = Breakers(threshold=5)
    if breakers.is_open("stripe"):
        ...  # report without sending
    breakers.started("stripe", task)
    breakers.record("stripe", task, result.failure_type == "unreachable")
    breakers.finished("stripe", task)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from reconciler.core.errors import InputError

DEFAULT_THRESHOLD = 10
THRESHOLD_VARIABLE = "RECONCILER_CIRCUIT_BREAKER_AFTER"
T = TypeVar("T")
SKIPPED_DETAIL = "not sent: the provider looked down in this run (circuit breaker open)"


def threshold_from_env(environ: Mapping[str, str] | None = None) -> int:
    """``RECONCILER_CIRCUIT_BREAKER_AFTER`` (consecutive unreachable checks); 0 turns it off."""
    raw = (os.environ if environ is None else environ).get(THRESHOLD_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_THRESHOLD
    try:
        value = int(raw)
    except ValueError:
        raise InputError(f"{THRESHOLD_VARIABLE} must be a whole number, e.g. 10") from None
    if value < 0:
        raise InputError(f"{THRESHOLD_VARIABLE} must be 0 (off) or more")
    return value


@dataclass
class _State:
    consecutive: int = 0
    open: bool = False
    tripped: bool = False  # opened before any check: the run's reads of it got no answer
    told: bool = False
    skipped: int = 0
    in_flight: set[asyncio.Task[object]] = field(default_factory=set)


class Breakers:
    """One breaker per provider; ``threshold`` 0 never opens."""

    def __init__(self, threshold: int = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        self._states: dict[str, _State] = {}

    @classmethod
    def for_run(cls, parallelism: int, environ: Mapping[str, str] | None = None) -> Breakers:
        """A run's breakers: ``RECONCILER_CIRCUIT_BREAKER_AFTER`` unreachable answers in a row,
        or fewer when fewer requests are in flight at once (never under 3)."""
        return cls(min(threshold_from_env(environ), max(3, parallelism)))

    def _state(self, provider: str) -> _State:
        state = self._states.get(provider)  # asked several times per request: build it once
        if state is None:
            state = self._states[provider] = _State()
        return state

    def is_open(self, provider: str) -> bool:
        return self._state(provider).open

    def started(self, provider: str, task: asyncio.Task[object] | None = None) -> None:
        if task is not None:
            self._state(provider).in_flight.add(task)

    def finished(self, provider: str, task: asyncio.Task[object] | None = None) -> None:
        self._state(provider).in_flight.discard(task)

    def record(self, provider: str, task: asyncio.Task[object] | None, unreachable: bool) -> None:
        """The final result of a check that was sent; opening cancels the provider's other
        checks still in flight (they report unreachable without waiting out their deadline)."""
        state = self._state(provider)
        if state.open:
            return
        state.consecutive = state.consecutive + 1 if unreachable else 0
        if self.threshold and state.consecutive >= self.threshold:
            state.open = True
            for other in state.in_flight - {task}:
                other.cancel()

    def trip(self, provider: str) -> None:
        """Open the provider's breaker before any check: this run already found it down
        (its provider-side reads got no answer), so none of its checks is sent."""
        state = self._state(provider)
        state.open = state.tripped = True

    def skip(self, provider: str) -> None:
        self._state(provider).skipped += 1

    async def behind(
        self,
        provider: str,
        call: Callable[[], Awaitable[T]],
        unreachable: Callable[[T], bool],
    ) -> T | None:
        """``call`` (a check, a read) behind the provider's breaker: None when it was not sent
        (open) or given up (the breaker opened while it waited for an answer); else its result,
        counted unreachable or not."""
        task = asyncio.current_task()
        assert task is not None
        if not self.is_open(provider):
            self.started(provider, task)
            try:
                result = await call()
            except asyncio.CancelledError:
                if not self.is_open(provider):
                    raise  # cancelled from outside (e.g. Ctrl-C), not by the breaker
                task.uncancel()
            else:
                self.record(provider, task, unreachable(result))
                return result
            finally:
                self.finished(provider, task)
        self.skip(provider)
        return None

    def summary(self) -> list[str]:
        """One sentence per provider whose breaker opened, for the run's output; each
        provider's once (a run that checks in several waves asks after each)."""
        out = []
        for name, s in sorted(self._states.items()):
            if not s.open or s.told or (s.tripped and not s.skipped):
                continue
            s.told = True
            why = (
                "its provider-side reads in this run got no answer"
                if s.tripped
                else f"{s.consecutive} checks in a row could not reach it"
            )
            out.append(
                f"{name} looks down: {why}, so {s.skipped} more of its checks in this run were "
                "not sent (or were given up) and are reported unreachable; the next run tries "
                "again"
            )
        return out
