"""``reconciler apply``: which plan, whether it may run, carrying it out, and the summary.

The CLI prints; these functions decide and return what to print."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.commands.inputs import Selection, actor_name
from reconciler.commands.run import Planned, make_plan, replan_after_schema, run_apply
from reconciler.commands.spares import Spares
from reconciler.core.changes import PlanError
from reconciler.core.errors import ReconcilerError
from reconciler.core.plan import Plan

if TYPE_CHECKING:  # apply pulls in the HTTP stack
    from reconciler.apply import ApplyReport
    from reconciler.apply.results import ChangeResult
    from reconciler.commands.parse_ahead import Ahead


def plan_to_apply(
    catalog_dir: str | None,
    paths: Sequence[str],
    selection: Selection,
    plan_file: str | None,
    environ: Mapping[str, str],
    parallelism: int = 10,
    spares: Spares | None = None,
    ahead: Ahead | None = None,
) -> Planned:
    """The saved plan, refused if stale; or a new plan, with the schema created first on a
    new database (so the plan is made against the real, empty state). ``parallelism``: the
    provider side is read as many connections at a time as apply checks. ``spares``: the
    workers it will need start as soon as the plan's database side is known. ``ahead``: a
    child parsing (and checking) the manifests already (``commands.parse_ahead``)."""
    if plan_file:
        from reconciler.commands.saved import load_saved_plan

        return load_saved_plan(Path(plan_file), catalog_dir, environ)
    planned = make_plan(
        catalog_dir,
        paths,
        environ,
        selection,
        parallelism=parallelism,
        early_checks=True,
        on_changes=spares.on_changes if spares is not None else None,
        ahead=ahead,
    )
    if not planned.observed.exists:
        from reconciler.db.engine import database_url, ensure_schema, make_engine

        ensure_schema(make_engine(database_url(environ)))
        planned = replan_after_schema(planned, environ, parallelism=parallelism)
    return planned


def refuse_too_many_deletions(plan: Plan, max_deletions: int | None) -> None:
    """``--max-deletions N``: a plan deleting more than N connections is refused before
    anything is written (N = 0 refuses any deletion; exactly N is allowed)."""
    deletions = len(plan.deletions())
    if max_deletions is not None and deletions > max_deletions:
        raise ReconcilerError(
            f"the plan deletes {deletions} connection(s), more than --max-deletions "
            f"{max_deletions}; nothing was written. Review the plan, then raise the limit."
        )


@dataclass(frozen=True)
class ApplyRun:
    """How to carry out a plan: who, how many checks at once, how long to wait for a lock,
    in how many processes (None: by the number of organizations, ``commands.workers``)."""

    actor: str | None
    parallelism: int
    lock_timeout: float
    from_saved_plan: bool
    workers: int | None = 1
    shard: tuple[int, int] | None = None


def carry_out(
    planned: Planned,
    run: ApplyRun,
    *,
    on_check: Callable[[Any], None] | None,
    on_start: Callable[[int], None] | None,
    environ: Mapping[str, str] = os.environ,
    spares: Spares | None = None,
) -> tuple[ApplyReport, BaseException | None]:
    """The report, and the error a worker process raised (``--workers``; the other workers'
    organizations are written and in the report): the CLI prints the report, then the error."""
    from reconciler.commands.workers import apply_in_workers, number_of_workers

    organizations = len({c.organization for c in planned.plan.changes})
    workers = number_of_workers(run.workers, organizations, run.parallelism)
    actor = actor_name(run.actor, environ)
    method = "apply --plan" if run.from_saved_plan else "apply"
    if workers > 1:
        split = apply_in_workers(
            planned,
            environ,
            workers=workers,
            shard=run.shard,
            actor=actor,
            parallelism=run.parallelism,
            method=method,
            lock_timeout=run.lock_timeout,
            on_check=on_check,
            on_start=on_start,
            spares=spares,
        )
        return split.report, split.error
    report = run_apply(
        planned,
        environ,
        actor=actor,
        parallelism=run.parallelism,
        on_check=on_check,
        on_start=on_start,
        method=method,
        lock_timeout=run.lock_timeout,
    )
    return report, None


@dataclass(frozen=True)
class Summary:
    """What the CLI prints after an apply: one line per change, a closing line, the errors."""

    lines: tuple[str, ...]
    closing: str
    errors: tuple[str, ...]
    exit_code: int


def _result_line(o: ChangeResult) -> str:
    """``ADDRESS: created``, or what was done and where (``ADDRESS: created at Stripe (we_1)``),
    never the verb twice."""
    said = "ERROR" if o.failed else o.result
    if not o.message:
        return f"{o.address}: {said}"
    if not o.failed and o.message.startswith(said):
        return f"{o.address}: {o.message}"
    return f"{o.address}: {said}: {o.message}"


def summarize(
    report: ApplyReport, left_out: tuple[PlanError, ...] = (), *, incomplete: bool = False
) -> Summary:
    """``left_out``: the plan's errors (connections left out of it, SPEC section 8); the rest
    was applied, and the run exits 1. ``incomplete``: a worker process failed (its error is
    printed after the summary)."""
    lines = tuple(_result_line(o) for o in report.outcomes)
    counts: dict[str, int] = {}
    for o in report.outcomes:
        counts[o.result] = counts.get(o.result, 0) + 1
    parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    if report.failed or left_out or incomplete:
        errors = tuple(f"Error: {e}" for e in left_out)
        errors += tuple(f"Error: {o.address}: {o.message}" for o in report.failed)
        return Summary(lines, f"Apply finished with errors: {parts}.", errors, 1)
    return Summary(lines, f"Apply complete: {parts}.", (), 0)
