"""What apply is asked to do (options) and what it reports (one result per change).

A result speaks the plan's vocabulary: a change carried out reports its ``Action`` in the
past tense (``created``, ``updated``, ``deleted``, ``adopted``, ``orphaned``); one that was not
reports why (``Status``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from reconciler.core.changes import Action, Change
from reconciler.health import CheckResult, RetryPolicy


@dataclass
class ApplyOptions:
    actor: str
    method: str = "apply"
    git_commit: str | None = None
    parallelism: int = 10
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    environ: Mapping[str, str] = field(default_factory=dict)
    on_check: Callable[[CheckResult], None] | None = None
    on_start: Callable[[int], None] | None = None  # number of checks about to run
    lock_timeout: float = 30.0
    # taken around each organization's writes when several worker processes share a SQLite
    # file (``reconciler.commands.channel.WriteTurn``)
    write_turn: Callable[[], AbstractContextManager[object]] | None = None
    # providers the plan's reads found down: no check is sent to them (circuit breaker)
    down: frozenset[str] = frozenset()
    # checks already answered, sent while the plan read the provider side (``early``)
    checked: Mapping[str, CheckResult] = field(default_factory=dict)
    # the processes of the run (``--workers``), which share the database's connections
    processes: int = 1


class Status(enum.StrEnum):
    DONE = "done"
    FAILED = "failed"  # the check, the lock or the state refused it
    BLOCKED = "blocked"  # a dependency did not connect
    SKIPPED = "skipped"  # nothing to do, or not done because something else failed


@dataclass(frozen=True)
class ChangeResult:
    """What happened to one change. ``done`` is the action carried out (a resource update
    whose row vanished is created again); ``result`` is how the CLI names it."""

    address: str
    action: Action
    status: Status
    message: str = ""
    failure_type: str | None = None
    done: Action | None = None

    @classmethod
    def of(
        cls,
        change: Change,
        status: Status,
        message: str,
        *,
        done: Action | None = None,
        failure_type: str | None = None,
    ) -> ChangeResult:
        return cls(change.address, change.action, status, message, failure_type, done)

    @property
    def result(self) -> str:
        if self.status is Status.DONE:
            return (self.done or self.action).past
        return self.status.value

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAILED, Status.BLOCKED)


@dataclass
class ApplyReport:
    outcomes: list[ChangeResult] = field(default_factory=list)

    @property
    def failed(self) -> list[ChangeResult]:
        return [o for o in self.outcomes if o.failed]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0
