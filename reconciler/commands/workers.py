"""``apply --workers N`` and ``health --workers N``: both cores for one command.

The organizations are split among N processes by the stable hash of their slug (the shard
machinery, one level down: ``inputs.worker_of``). This process is worker 0 and coordinates;
workers 1..N-1 are child processes running ``reconciler.commands.worker`` (the same code as
this process), each with its own event loop, database connection and share of
``--parallelism``. They inherit the environment (the
only way a secret reaches them: never a command line or a file) and talk with this process
over their stdin and stdout, in pickled frames (``multiprocessing.connection``): the job in
(the plan's changes and observed rows of their organizations: no ``Secret`` can be pickled),
then progress, log records and one result out. This process prints everything: one progress
bar, the same lines in the same order as one process would, one exit code, one run record.

The channel itself (starting a child, its frames, the shared progress display, SQLite's write
turns) is ``reconciler.commands.channel``.

A worker that dies (SIGKILL, out of memory) is reported and the command exits 1; the
organizations it wrote are written, those it was writing are untouched (each organization is
written whole in one transaction, sometimes with others ready at the same time). A
worker whose coordinator dies sees its stdin close and stops after the organization it is
writing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any, TypeVar

from reconciler.commands.channel import (
    BreakerNotes,
    Child,
    Relay,
    WriteTurn,
    listen,
    start_child,
    turn_file,
    worst,
)
from reconciler.commands.inputs import Selection, worker_of
from reconciler.core.errors import ReconcilerError
from reconciler.core.state import Observed

if TYPE_CHECKING:
    from reconciler.apply import ApplyReport
    from reconciler.commands.run import Planned
    from reconciler.commands.spares import Spares

log = logging.getLogger("reconciler.workers")

WORKERS_VARIABLE = "RECONCILER_WORKERS"
# organizations per worker before another process pays for itself (bench/RESULTS.md): a
# worker's start-up costs 1 to 2.5 s of CPU on the 2-core machine there; an organization's first
# apply about 35 ms (7 connections), its health checks about 10 ms
ORGS_PER_WORKER = 100
HEALTH_ORGS_PER_WORKER = 500


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def number_of_workers(
    requested: int | None, organizations: int, parallelism: int, per_worker: int = ORGS_PER_WORKER
) -> int:
    """``--workers`` (or ``RECONCILER_WORKERS``) if given, else one per ``per_worker``
    organizations up to the number of CPUs; never more than the organizations or the
    concurrent checks (each worker runs at least one)."""
    wanted = requested if requested else min(available_cpus(), organizations // per_worker)
    return max(1, min(wanted, organizations, parallelism))


def parallelism_shares(parallelism: int, workers: int) -> list[int]:
    """``--parallelism`` stays the number of concurrent checks in all: split it."""
    return [
        parallelism // workers + (1 if i < parallelism % workers else 0) for i in range(workers)
    ]


def _finish(children: Sequence[Child], relay: Relay) -> None:
    for c in children:
        assert c.thread is not None
        c.thread.join()
    relay.finish()


def _launch(
    jobs: Sequence[tuple[int, dict[str, Any], int]],
    relay: Relay,
    turn: IO[bytes] | None,
    started: Sequence[Child] = (),
) -> list[Child]:
    """A child per job: one of those ``started`` early (``spares``) while there are, else a
    new one."""
    children = []
    waiting = list(started)
    for index, job, organizations in jobs:
        if turn is not None:
            job["write_turn_fd"] = turn.fileno()
        fds = (turn.fileno(),) if turn is not None else ()
        if waiting:
            child = waiting.pop(0)
            child.index, child.organizations, child.job = index, organizations, job
        else:
            child = start_child(index, job, organizations, fds)
        child.thread = threading.Thread(
            target=listen, args=(child, relay), name=f"reconciler-worker-{index + 1}", daemon=True
        )
        child.thread.start()
        children.append(child)
    return children


def _verbose() -> bool:
    return logging.getLogger("reconciler").getEffectiveLevel() <= logging.DEBUG


T = TypeVar("T")


def run_split(
    jobs: Sequence[tuple[int, dict[str, Any], int]],
    relay: Relay,
    own: Callable[[], T],
    turn: IO[bytes] | None,
    started: Sequence[Child] = (),
) -> tuple[T | None, list[BaseException], list[Child]]:
    """Start the children with their jobs, do this process's share (``own``) meanwhile, and
    wait for all: what ``own`` returned (None if it failed), the errors (ours first), the
    children with their results. Interrupted (Ctrl-C), the children are told to stop and
    waited for (each finishes the organization it is writing), then the interruption goes on."""
    from reconciler.health.limits import share_among

    errors: list[BaseException] = []
    result: T | None = None
    processes = len(jobs) + 1
    for _, job, _ in jobs:  # each paces a key shared with the others at its share of the limit
        job["processes"] = processes
    share_among(processes)
    with BreakerNotes():
        children = _launch(jobs, relay, turn, started)
        try:
            try:
                result = own()
            except ReconcilerError as e:
                errors.append(e)
            _finish(children, relay)
        except BaseException:  # interrupted, in our share or waiting for theirs
            for c in children:  # as on Ctrl-C: each stops after the organization it writes
                with contextlib.suppress(OSError):
                    c.proc.send_signal(signal.SIGINT)
            _finish(children, relay)
            raise
        finally:
            share_among(1)
    return result, errors, children


# --- apply ----------------------------------------------------------------------------------


@dataclass
class SplitReport:
    """The apply's combined report, and the worst error a worker raised (after the others
    finished: their organizations are written)."""

    report: ApplyReport
    error: BaseException | None = None


def subplan(planned: Planned, organizations: set[str]) -> tuple[Any, Observed]:
    """The plan's changes and the observed rows of some organizations."""
    plan = planned.plan
    part = replace(
        plan,
        changes=tuple(c for c in plan.changes if c.organization in organizations),
        organizations=tuple(o for o in plan.organizations if o in organizations),
        notes=(),
        errors=(),
    )
    observed = planned.observed
    sub = Observed(
        instances={k: v for k, v in observed.instances.items() if k[0] in organizations},
        lineage=observed.lineage,
        serial=observed.serial,
        exists=observed.exists,
        pending=tuple(p for p in observed.pending if p.organization in organizations),
    )
    return part, sub


def _organization(address: str) -> str:
    return address.split("/", 1)[0]


def apply_in_workers(
    planned: Planned,
    environ: Mapping[str, str],
    *,
    workers: int,
    shard: tuple[int, int] | None,
    actor: str,
    parallelism: int,
    method: str,
    lock_timeout: float,
    on_check: Callable[[Any], None] | None,
    on_start: Callable[[int], None] | None,
    spares: Spares | None = None,
) -> SplitReport:
    """Carry out ``planned`` in ``workers`` processes (this one is worker 0), the ``spares``
    started while it was planned among them."""
    from reconciler.apply import ApplyReport
    from reconciler.commands.run import run_apply

    groups: list[set[str]] = [set() for _ in range(workers)]
    for org in {c.organization for c in planned.plan.changes}:
        groups[worker_of(org, workers, shard)].add(org)
    groups = [g for g in groups if g] or [set()]
    shares = parallelism_shares(parallelism, len(groups))
    relay = Relay(len(groups), on_check, on_start)
    jobs = []
    for i, group in enumerate(groups[1:], start=1):
        plan, observed = subplan(planned, group)
        job = {
            "command": "apply",
            "verbose": _verbose(),
            "plan": plan,
            "observed": observed,
            "catalog": planned.catalog,
            "git_commit": planned.git_commit,
            "actor": actor,
            "method": method,
            "parallelism": shares[i],
            "lock_timeout": lock_timeout,
            "down": planned.down,
            "checked": {a: r for a, r in planned.checked.items() if _organization(a) in group},
        }
        jobs.append((i, job, len(group)))
    log.debug("apply in %d worker(s): %s organization(s)", len(groups), [len(g) for g in groups])
    plan, observed = subplan(planned, groups[0])
    ready = spares.take() if spares is not None else None
    with contextlib.nullcontext(ready.turn) if ready is not None else turn_file(environ) as turn:
        own, errors, children = run_split(
            jobs,
            relay,
            lambda: run_apply(
                replace(planned, plan=plan, observed=observed),
                environ,
                actor=actor,
                parallelism=shares[0],
                on_check=relay.check,
                on_start=lambda n: relay.start(0, n),
                method=method,
                lock_timeout=lock_timeout,
                write_turn=WriteTurn(turn.fileno()) if turn is not None else None,
                processes=len(groups),
            ),
            turn,
            ready.children if ready is not None else (),
        )
    report = ApplyReport(outcomes=list(own.outcomes) if own is not None else [])
    for c in children:
        if c.error is not None:
            errors.append(c.error)
        elif c.result is not None:
            report.outcomes.extend(c.result)
    report.outcomes.sort(key=lambda o: o.address)  # stable: an organization's order is kept
    return SplitReport(report, worst(errors))


# --- health ---------------------------------------------------------------------------------


def health_organizations(
    catalog_dir: str | None, environ: Mapping[str, str], selection: Selection
) -> int:
    """How many organizations ``health`` would check (those with an instance not inactive).
    A bad catalog, key or time limit is refused first, as ``run_health`` does, before the
    database is asked."""
    from sqlalchemy import select

    from reconciler.commands.inputs import keyring, policy_from_env
    from reconciler.core.catalog import load_catalog
    from reconciler.db.engine import database_exists, database_url, has_schema, make_engine
    from reconciler.db.schema import Instance

    load_catalog(catalog_dir)
    keyring(environ)
    policy_from_env(environ)

    url = database_url(environ)
    if not database_exists(url):
        return 0
    engine = make_engine(url)
    if not has_schema(engine):
        return 0
    with engine.connect() as conn:
        names = conn.scalars(
            select(Instance.organization).where(Instance.status != "inactive").distinct()
        ).all()
    return sum(1 for n in names if selection.admits(n))


def health_in_workers(
    catalog_dir: str | None,
    environ: Mapping[str, str],
    selection: Selection,
    *,
    workers: int,
    providers: Sequence[str],
    actor: str,
    parallelism: int,
    on_check: Callable[[Any], None] | None,
    on_start: Callable[[int], None] | None,
) -> list[dict[str, Any]]:
    """``run_health`` in ``workers`` processes (this one is worker 0); the results in the
    order one process gives them."""
    from reconciler.commands.healthcmd import run_health

    shares = parallelism_shares(parallelism, workers)
    relay = Relay(workers, on_check, on_start)
    jobs = []
    for i in range(1, workers):
        job = {
            "command": "health",
            "verbose": _verbose(),
            "catalog_dir": catalog_dir,
            "selection": replace(selection, part=(i, workers)),
            "providers": tuple(providers),
            "actor": actor,
            "parallelism": shares[i],
        }
        jobs.append((i, job, 0))
    order: list[Any] = []
    with turn_file(environ) as turn:
        own, errors, children = run_split(
            jobs,
            relay,
            lambda: run_health(
                catalog_dir,
                environ,
                replace(selection, part=(0, workers)),
                providers=providers,
                actor=actor,
                parallelism=shares[0],
                on_check=relay.check,
                on_start=lambda n: relay.start(0, n),
                order=order,
                write_turn=WriteTurn(turn.fileno()) if turn is not None else None,
            ),
            turn,
        )
    rows: list[tuple[Any, dict[str, Any]]] = []
    if own is not None:
        rows.extend(zip(order, own, strict=True))
    for c in children:
        if c.error is not None:
            errors.append(c.error)
        elif c.result is not None:
            rows.extend(c.result)
    error = worst(errors)
    if error is not None:
        raise error
    rows.sort(key=lambda kr: kr[0])
    return [r for _, r in rows]
