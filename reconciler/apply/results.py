"""What apply is asked to do (options) and what it reports (outcomes)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Outcome:
    """What happened to one change: ``created``, ``updated``, ``deleted``, ``adopted``,
    ``orphaned``, ``failed``, ``blocked`` or ``skipped``."""

    address: str
    action: str
    result: str
    message: str = ""
    failure_type: str | None = None

    @property
    def failed(self) -> bool:
        return self.result in ("failed", "blocked")


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failed]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0
