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

A worker that dies (SIGKILL, out of memory) is reported and the command exits 1; the
organizations it wrote are written, the one it was writing is untouched (each organization is
one transaction). A worker whose coordinator dies sees its stdin close and stops after the
organization it is writing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

from reconciler.commands.inputs import Selection, worker_of
from reconciler.core.errors import ReconcilerError
from reconciler.core.state import Observed

if TYPE_CHECKING:
    from reconciler.apply import ApplyReport
    from reconciler.commands.run import Planned

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


class WriteTurn:
    """SQLite has one write lock for the whole file, and a writer waiting for it polls (up to
    100 ms apart) while another takes it again within a millisecond of releasing it: a worker
    could wait for many seconds, past ``--lock-timeout``, behind another that always has an
    organization ready. So the workers sharing a SQLite file take turns for each
    organization's writes: a POSIX lock on an empty, unlinked file every worker holds open
    (waiters sleep in the kernel and are woken at once; the lock goes with a killed process).
    After its turn a worker lets a waiting one go first."""

    HAND_OVER_S = 0.001

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        asked = time.monotonic()
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        log.debug("write turn after %.3f s", time.monotonic() - asked)
        try:
            yield
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)
            time.sleep(self.HAND_OVER_S)


def turn_file(environ: Mapping[str, str]) -> IO[bytes] | None:
    """The file of the workers' ``WriteTurn`` on SQLite; None on PostgreSQL, where each
    organization has its own lock."""
    from reconciler.db.engine import database_url

    if not database_url(environ).startswith("sqlite"):
        return None
    return tempfile.TemporaryFile()


@dataclass
class CheckView:
    """A finished check as a worker reports it: what the progress display reads."""

    key: str
    status: str
    message: str
    failure_type: str | None
    response_ms: int | None


def check_view(r: Any) -> CheckView:
    key = getattr(r.key, "address", r.key)
    return CheckView(str(key), r.status, r.message, r.failure_type, r.response_ms)


class Relay:
    """One progress display for all workers: the total is the sum of theirs, so checks that
    finish before every worker has counted its own are held back until then."""

    def __init__(
        self,
        workers: int,
        on_check: Callable[[Any], None] | None,
        on_start: Callable[[int], None] | None,
    ) -> None:
        self.workers = workers
        self.on_check = on_check
        self.on_start = on_start
        self._lock = threading.Lock()
        self._totals: dict[int, int] = {}
        self._held: list[Any] = []
        self._started = False

    def start(self, worker: int, total: int) -> None:
        with self._lock:
            self._totals.setdefault(worker, total)
            if len(self._totals) == self.workers:
                self._begin()

    def check(self, r: Any) -> None:
        with self._lock:
            if self._started:
                if self.on_check is not None:
                    self.on_check(r)
            else:
                self._held.append(r)

    def finish(self) -> None:
        """Every worker is done: show what is still held (a worker that failed before
        counting its checks counts none)."""
        with self._lock:
            if not self._started:
                self._begin()

    def _begin(self) -> None:
        self._started = True
        if self.on_start is not None:
            self.on_start(sum(self._totals.values()))
        if self.on_check is not None:
            for r in self._held:
                self.on_check(r)
        self._held.clear()


@dataclass
class Child:
    """A worker process and what it sent back."""

    index: int
    organizations: int
    proc: subprocess.Popen[bytes]
    send: Connection
    receive: Connection
    job: dict[str, Any] | None = field(default=None, repr=False)
    result: Any = None
    error: BaseException | None = None
    done: bool = False
    thread: threading.Thread | None = field(default=None, repr=False)


# the child runs the code this process runs, wherever it was imported from
_ROOT = Path(__file__).resolve().parents[2]
_BOOTSTRAP = (
    "import sys; root = {root!r}\n"
    "if root not in sys.path: sys.path.insert(0, root)\n"
    "from reconciler.commands.worker import main; sys.exit(main())"
)


def start_child(
    index: int, job: dict[str, Any], organizations: int, pass_fds: Sequence[int] = ()
) -> Child:
    """Start a worker process; ``listen`` sends it ``job`` (without waiting here for it to
    have started: its imports take about a second)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _BOOTSTRAP.format(root=str(_ROOT))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        close_fds=True,
        pass_fds=tuple(pass_fds),
    )
    assert proc.stdin is not None and proc.stdout is not None
    send = Connection(os.dup(proc.stdin.fileno()), readable=False)
    receive = Connection(os.dup(proc.stdout.fileno()), writable=False)
    proc.stdin.close()
    proc.stdout.close()
    return Child(index, organizations, proc, send, receive, job)


def listen(child: Child, relay: Relay) -> None:
    """Read a child's frames until it has answered or gone (in a thread per child)."""
    relay_started = False
    try:
        job, child.job = child.job, None
        child.send.send(job)
        while True:
            kind, *rest = child.receive.recv()
            if kind == "start":
                relay.start(child.index, rest[0])
                relay_started = True
            elif kind == "check":
                relay.check(CheckView(*rest))
            elif kind == "log":
                name, level, message, created = rest
                _emit(name, level, message, created, child.proc.pid)
            elif kind == "result":
                child.result = rest[0]
                child.done = True
                break
            elif kind == "error":
                child.error = decode_error(rest[0])
                child.done = True
                break
    except (EOFError, OSError):
        pass
    finally:
        if not relay_started:
            relay.start(child.index, 0)
        with contextlib.suppress(OSError):
            child.send.close()  # the child may now end; a child still working stops
        code = child.proc.wait()
        if not child.done:
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            share = f"{child.organizations} organization(s)" if child.organizations else "its share"
            child.error = ReconcilerError(
                f"worker {child.index + 1} (pid {child.proc.pid}) stopped unexpectedly ({how}) "
                f"while working on {share}; each organization is either fully written or "
                "untouched. Run the command again."
            )


class BreakerNotes(logging.Filter):
    """Each worker's circuit breakers say when a provider looks down; the run says it once.
    Held back while the workers run, then one sentence per provider, with the checks every
    worker skipped added up (the sentence as one worker words it, when it cannot be read)."""

    LOGGER = "reconciler.health"
    SENTENCE = re.compile(
        r"^(?P<name>\S+) looks down: (?P<a>.*?, so )(?P<skipped>\d+)(?P<b> more .*)$"
    )

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if " looks down: " not in record.getMessage():
            return True
        with self._lock:
            self.held.append(record)
        return False

    def __enter__(self) -> BreakerNotes:
        logging.getLogger(self.LOGGER).addFilter(self)
        return self

    def __exit__(self, *_: object) -> None:
        logger = logging.getLogger(self.LOGGER)
        logger.removeFilter(self)
        for level, message in self.merged():
            logger.log(level, "%s", message)

    def merged(self) -> list[tuple[int, str]]:
        by_provider: dict[str, list[tuple[int, re.Match[str]]]] = {}
        out: list[tuple[int, str]] = []
        for record in self.held:
            match = self.SENTENCE.match(record.getMessage())
            if match is None:
                out.append((record.levelno, record.getMessage()))
            else:
                by_provider.setdefault(match["name"], []).append((record.levelno, match))
        for name, said in sorted(by_provider.items()):
            level, first = said[0]
            skipped = sum(int(m["skipped"]) for _, m in said)
            out.append((level, f"{name} looks down: {first['a']}{skipped}{first['b']}"))
        return out


def _emit(name: str, level: int, message: str, created: float, pid: int) -> None:
    """A worker's log record, with its time and process, where this process's records go."""
    record = logging.makeLogRecord(
        {
            "name": name,
            "levelno": level,
            "levelname": logging.getLevelName(level),
            "msg": message,
            "created": created,
            "msecs": (created - int(created)) * 1000,
            "process": pid,
        }
    )
    logging.getLogger(name).handle(record)


def encode_error(e: BaseException) -> tuple[str, Any, str]:
    """An error for the channel: pickled when it can be (a ``Secret`` never can), else its
    type's name and, for our own errors (which never quote a secret), its message."""
    try:
        blob = pickle.dumps(e)
        pickle.loads(blob)  # noqa: S301 (our own bytes, just made)
        return ("pickled", blob, "")
    except Exception:
        return ("named", type(e).__name__, str(e) if isinstance(e, ReconcilerError) else "")


def decode_error(encoded: tuple[str, Any, str]) -> BaseException:
    kind, value, message = encoded
    if kind == "pickled":
        error = pickle.loads(value)  # noqa: S301 (from our own worker's pipe)
        assert isinstance(error, BaseException)
        return error
    if message:
        return ReconcilerError(message)
    # the same type name in "An unexpected error has occurred: NAME" (exit 3)
    return type(str(value), (Exception,), {})()


def worst(errors: Sequence[BaseException]) -> BaseException | None:
    """The error to raise for the run: an unexpected one (exit 3) before our own (exit 1)."""
    unexpected = [e for e in errors if not isinstance(e, ReconcilerError)]
    ranked = unexpected or list(errors)
    return ranked[0] if ranked else None


def _finish(children: Sequence[Child], relay: Relay) -> None:
    for c in children:
        assert c.thread is not None
        c.thread.join()
    relay.finish()


def _launch(
    jobs: Sequence[tuple[int, dict[str, Any], int]], relay: Relay, turn: IO[bytes] | None
) -> list[Child]:
    children = []
    for index, job, organizations in jobs:
        if turn is not None:
            job["write_turn_fd"] = turn.fileno()
        fds = (turn.fileno(),) if turn is not None else ()
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
) -> tuple[T | None, list[BaseException], list[Child]]:
    """Start the children with their jobs, do this process's share (``own``) meanwhile, and
    wait for all: what ``own`` returned (None if it failed), the errors (ours first), the
    children with their results. Interrupted (Ctrl-C), the children are told to stop and
    waited for (each finishes the organization it is writing), then the interruption goes on."""
    errors: list[BaseException] = []
    result: T | None = None
    with BreakerNotes():
        children = _launch(jobs, relay, turn)
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
) -> SplitReport:
    """Carry out ``planned`` in ``workers`` processes (this one is worker 0)."""
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
        }
        jobs.append((i, job, len(group)))
    log.debug("apply in %d worker(s): %s organization(s)", len(groups), [len(g) for g in groups])
    plan, observed = subplan(planned, groups[0])
    with contextlib.ExitStack() as stack:
        turn = turn_file(environ)
        if turn is not None:
            stack.enter_context(turn)
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
            ),
            turn,
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
    with contextlib.ExitStack() as stack:
        turn = turn_file(environ)
        if turn is not None:
            stack.enter_context(turn)
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
