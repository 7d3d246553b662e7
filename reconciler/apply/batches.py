"""How an apply's writes take turns: how many writer threads (``writer_count``), SQLite's
write turn (``turn``), and several organizations' upserts in one transaction when they are
ready together (``Combiner``).

SQLite has one writer: an apply's write transactions take turns (``turn``), and with
provider calls in the way a first apply's turns are its slowest part. Most of a transaction
is the same for every organization: the write lock, the state's serial and audit head, the
audit entries' insert, the commit (on PostgreSQL a flush of its log, and the server's CPU on
the same machine). So a writer thread whose organization is ready does not write it alone: it
joins the organizations waiting (``Combiner.write``), and the first writer to get the turn
writes every one of them in one transaction (flat combining); the others find theirs written.
Measured at 1,000 organizations: SQL statements of a first apply 8,341 -> 5,745 on SQLite;
the PostgreSQL server's CPU a quarter lower (bench/RESULTS.md).

Only organizations held across their transactions (``hold_organization``: those with provider
calls) are combined: each is held by its own writer thread until its write is done, so the
transaction takes no organization's lock but its writer's own (which on SQLite is the write
lock, and on PostgreSQL held already). Each organization is still checked against
what the plan saw and written whole or not at all: a transaction that fails writes none of
its organizations (each of their threads raises its error, as it would have alone), and a
process killed while writing leaves them all unwritten, for the next apply to finish.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import Engine

from reconciler.apply.checks import Checker
from reconciler.apply.remote import Outcome
from reconciler.core.changes import Change, Plan
from reconciler.db.locking import organizations_apart
from reconciler.db.records import OrgRows

# writer threads at most, for a plan with provider calls. On PostgreSQL each holds one of the
# engine's connections, the organization's lock (its rows are read there too), and one more
# while it writes (the pool has 15); more writers make bigger batches (12 against 6: a first
# apply's statements 4,834 -> 2,906 at 1,000 organizations). On SQLite one (its locks are
# files), and its write transactions take turns.
MAX_WRITERS = {"postgresql": 12, "sqlite": 12}
# PostgreSQL connections held by the writers of all of a run's processes at most (the server's
# default max_connections is 100; eight processes of twelve writers would pass it)
POSTGRESQL_WRITERS_IN_ALL = 24


class Sent(NamedTuple):
    """What an organization's provider calls did (by address), and the rows they were worked
    out from, read and checked against the plan under the organization's lock (None: not
    read). Its thread holds that lock until its last write, so the rows stay as read."""

    outcomes: Mapping[str, Outcome]
    rows: OrgRows | None = None


@dataclass(eq=False)
class Upsert:
    """One organization's creates and updates, with what its provider calls did (and the
    rows read for them, attached to the write's session instead of read again)."""

    org: str
    changes: list[Change]
    upserts: list[Change]
    checker: Checker
    sent: Sent = field(default_factory=lambda: Sent({}))
    done: bool = False
    # True: all written; False: written, something failed; None: not written (moved on)
    ok: bool | None = None
    error: BaseException | None = None


class Combiner:
    """The upserts waiting for this process's write turn, written together by whoever gets
    it first. ``write(batch, own)`` writes a batch in one transaction, setting each
    ``Upsert.ok``; ``own`` is the writing thread's."""

    def __init__(self, turn: threading.Lock, write: Callable[[list[Upsert], Upsert], None]) -> None:
        self._turn = turn
        self._write = write
        self._lock = threading.Lock()
        self._waiting: list[Upsert] = []

    def write(self, job: Upsert) -> Upsert:
        """``job`` written (with others, or by another thread); raises what writing it
        raised."""
        with self._lock:
            self._waiting.append(job)
        with self._turn:
            if not job.done:
                with self._lock:
                    batch, self._waiting = self._waiting, []
                try:
                    self._write(batch, job)
                except BaseException as e:  # each organization's thread raises it
                    for j in batch:
                        j.error = e
                finally:
                    for j in batch:
                        j.done = True
        if job.error is not None:
            raise job.error
        return job


def writer_count(engine: Engine, plan: Plan, parallelism: int, processes: int = 1) -> int:
    """Organizations written at once. One, unless the plan calls providers and the
    database locks each organization apart (PostgreSQL; an SQLite file on Linux): then
    the provider calls of several organizations, each under its own lock, overlap
    instead of queueing behind one another (SQLite's write transactions still take
    turns, ``turn``)."""
    if not organizations_apart(engine):
        return 1
    if not any(c.remote for c in plan.changes):
        return 1
    most = MAX_WRITERS.get(engine.dialect.name, 1)
    if engine.dialect.name == "postgresql":  # ``processes``: of the run, sharing the server
        most = min(most, POSTGRESQL_WRITERS_IN_ALL // max(1, processes))
    return max(1, min(most, parallelism, len(plan.organizations)))


@contextmanager
def turn(
    threads: threading.Lock, processes: Callable[[], AbstractContextManager[object]] | None
) -> Iterator[None]:
    """A write transaction's turn on SQLite: this process's writer threads', then (with
    ``--workers``) the processes'."""
    with threads, processes() if processes is not None else nullcontext():
        yield
