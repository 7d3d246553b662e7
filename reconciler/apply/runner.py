"""The apply pipeline: checks in this thread, each organization written in a second thread as
soon as its checks are back, so writes overlap the checks of other organizations."""

from __future__ import annotations

import functools
import logging
import os
import queue
import socket
import threading
from collections import defaultdict
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reconciler.apply.batches import Combiner, Sent, Upsert, turn, writer_count
from reconciler.apply.checks import Checker
from reconciler.apply.remote import Outcome, ProviderCalls, unsafe_creates, write_pending
from reconciler.apply.results import ApplyOptions, ApplyReport, ChangeResult, Status
from reconciler.apply.sends import Send, credentials_for, to_send
from reconciler.apply.writes import NewRows, OrgWriter, upsert_together
from reconciler.audit import AuditWriter
from reconciler.core.catalog import Catalog
from reconciler.core.changes import Action, Change, Kind, Plan
from reconciler.core.errors import InputError, LockError
from reconciler.core.remote import RemoteChange
from reconciler.core.secret import Secret
from reconciler.core.state import Observed, plan_signature
from reconciler.crypto import KeyRing
from reconciler.db.locking import (
    hold_organization,
    last_writer,
    lock_organization,
    read_session,
)
from reconciler.db.records import OrgRows

log = logging.getLogger("reconciler.apply")


class Applier:
    def __init__(
        self,
        engine: Engine,
        catalog: Catalog,
        keyring: KeyRing,
        options: ApplyOptions,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.secrets: Mapping[str, Secret] = {}
        self.keyring = keyring
        self.options = options
        self.report = ApplyReport()
        self.observed = Observed()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._queued: set[str] = set()
        self._pending: dict[str, set[str]] = {}
        self._error: BaseException | None = None
        self._stop = False
        self._threads_turn = threading.Lock()  # this process's write transactions, one at a time
        self._combiner = Combiner(self._threads_turn, self._write_batch)
        # provider-side steps (SPEC section 8), under each organization's lock; the rate
        # limits of every key are shared by the whole run
        self.calls = ProviderCalls(catalog, policy=options.policy, environ=options.environ)

    @functools.cached_property
    def holder(self) -> str:
        return f"{self.options.actor} on {socket.gethostname()} pid {os.getpid()}"

    def apply(self, plan: Plan, secrets: Mapping[str, Secret], observed: Observed) -> ApplyReport:
        """Carry out ``plan``, computed from ``observed``, with ``secrets`` (environment
        variable -> value) for the credentials its changes name. Each organization is written
        under its lock, and only if its state is still what the plan saw."""
        missing = [v for v in plan.variables() if v not in secrets]
        if missing:
            raise InputError(
                "the plan stores credentials from these environment variables, which are not "
                "set: " + ", ".join(missing)
            )
        self.observed = observed
        self.secrets = secrets
        by_org: dict[str, list[Change]] = defaultdict(list)
        for ch in plan.changes:
            by_org[ch.organization].append(ch)
        checker = Checker(
            self.engine, self.catalog, secrets, self.keyring, self.options, on_done=self._done
        )
        self._pending = checker.pending(plan)
        writers = [
            threading.Thread(
                target=self._write_loop,
                args=(by_org, checker),
                name=f"reconciler-writer-{i}",
                daemon=True,
            )
            for i in range(
                writer_count(self.engine, plan, self.options.parallelism, self.options.processes)
            )
        ]
        for writer in writers:
            writer.start()
        try:
            for org in sorted(by_org):
                if not self._pending.get(org):
                    self._enqueue(org)
            checker.run(plan)
            for org in sorted(by_org):  # every verdict is in
                self._enqueue(org)
        except BaseException:
            self._stop = True  # interrupted: finish the organization being written, no more
            raise
        finally:
            for _ in writers:
                self._queue.put(None)
            for writer in writers:
                writer.join()
            self.calls.close()
        if self._error is not None:
            raise self._error
        self.report.outcomes.sort(key=lambda o: o.address)
        for o in self.report.outcomes:
            log.debug("%s %s: %s", o.action, o.address, o.result)
        return self.report

    def _done(self, address: str) -> None:
        org = address.split("/", 1)[0]
        waiting = self._pending.get(org)
        if waiting is not None:
            waiting.discard(address)
            if not waiting:
                self._enqueue(org)

    def _enqueue(self, org: str) -> None:
        if org not in self._queued:
            self._queued.add(org)
            self._queue.put(org)

    def _write_loop(self, by_org: dict[str, list[Change]], checker: Checker) -> None:
        while (org := self._queue.get()) is not None:
            if self._error is not None or self._stop:
                continue
            try:
                self._apply_organization(org, by_org[org], checker)
                log.debug("%s: written", org)
            except LockError as e:
                # one locked organization does not stop the others
                for ch in by_org[org]:
                    self.report.outcomes.append(ChangeResult.of(ch, Status.FAILED, str(e)))
            except BaseException as e:  # re-raised in the main thread
                self._error = e

    def _apply_organization(self, org: str, changes: list[Change], checker: Checker) -> None:
        order = self.catalog.dependency_order({c.provider for c in changes})
        rank = {p: i for i, p in enumerate(order)}
        parent_gone = {
            c.parent
            for c in changes
            if c.kind is Kind.CONNECTION and c.action in (Action.DELETE, Action.ORPHAN)
        }

        def later(c: Change) -> bool:
            if c.kind is Kind.CONNECTION:
                return c.action in (Action.DELETE, Action.ORPHAN)
            return c.action is Action.DELETE and c.parent in parent_gone

        upserts = sorted(
            (c for c in changes if not later(c)),
            key=lambda c: (rank[c.provider], c.kind is not Kind.CONNECTION, c.address),
        )
        teardown = sorted(
            (c for c in changes if later(c)),
            key=lambda c: (-rank[c.provider], c.kind is Kind.CONNECTION, c.address),
        )
        pending = unsafe_creates(self.catalog, upserts)
        calls = any(c.remote for c in changes)
        if calls or (upserts and teardown):
            # more than one transaction, or provider calls between them: the lock is held
            # from the first read of the state to the last write, calls included (SPEC 8)
            log.debug("%s: holding the organization's lock across its transactions", org)
            with hold_organization(
                self.engine, org, timeout=self.options.lock_timeout, holder=self.holder
            ):
                self._write_organization(org, changes, checker, upserts, teardown, pending, True)
        else:
            self._write_organization(org, changes, checker, upserts, teardown, pending, False)

    def _write_organization(
        self,
        org: str,
        changes: list[Change],
        checker: Checker,
        upserts: list[Change],
        teardown: list[Change],
        pending: list[RemoteChange],
        held: bool,
    ) -> None:
        """The organization's transactions; its provider calls are made between them, so
        the database's write lock is never held while a provider answers. ``held``: by this
        thread, across them (on SQLite its upsert may then share a transaction, ``batches``)."""
        checked = False
        sends: list[Send] | None = None
        if pending:  # committed before the calls: a crash after the answer leaves a trace
            with self._turn(), Session(self.engine, autoflush=False) as s, s.begin():
                rows = self._rows(s, org, changes, check=True, durable=True)
                if rows is None:
                    return
                write_pending(s, org, pending, datetime.now(UTC))
                # what to send, from the rows just read (the lock keeps them as they are)
                sends = self._sends(org, rows, checker, upserts, upsert=True)
            checked = True
        ok = True
        if upserts:
            if sends is not None:
                sent: Sent | None = Sent(self.calls.run_all(org, sends))
            else:
                sent = self._send(org, changes, checker, upserts, upsert=True, checked=checked)
            if sent is None:
                return
            job = Upsert(org, changes, upserts, checker, sent)
            if held:  # combined with the upserts ready at the same time (batches)
                self._combiner.write(job)
            else:
                with self._turn():
                    self._upsert([job], job)
            if job.ok is None:
                return
            checked, ok = True, job.ok
        if not teardown:
            return
        if not ok:
            for ch in teardown:
                self.report.outcomes.append(
                    ChangeResult.of(
                        ch,
                        Status.SKIPPED,
                        "not torn down: a create or update of this organization failed",
                    )
                )
            return
        sent = self._send(org, changes, checker, teardown, upsert=False, checked=checked)
        if sent is None:
            return
        with self._turn(), Session(self.engine, autoflush=False) as s, s.begin():
            writer = self._open(s, org, changes, checker, check=not checked, outcomes=sent.outcomes)
            if writer is None:
                return
            for ch in teardown:
                writer.teardown(ch)
            writer.finish()

    def _send(
        self,
        org: str,
        changes: list[Change],
        checker: Checker,
        batch: list[Change],
        *,
        upsert: bool,
        checked: bool,
    ) -> Sent | None:
        """Carry out at the providers the remote steps of ``batch`` (an upsert or a teardown)
        that its transaction will record: read the organization's rows (the lock is held, so
        they stay as read), then call, outside any transaction. None (reported) when the rows
        are no longer what the plan saw."""
        if not any(c.remote for c in batch):
            return Sent({})
        with read_session(self.engine, org) as s:
            rows = OrgRows.load(s, org)
            if not checked and not self._unchanged(s, org, rows, changes):
                return None
            sends = self._sends(org, rows, checker, batch, upsert=upsert)
        return Sent(self.calls.run_all(org, sends), rows)

    def _sends(
        self, org: str, rows: OrgRows, checker: Checker, batch: list[Change], *, upsert: bool
    ) -> list[Send]:
        """The remote steps of ``batch`` that go out, each with its credentials, given the
        organization's rows."""
        connections = {
            c.provider: c.connection
            for c in batch
            if c.kind is Kind.CONNECTION and c.connection is not None
        }
        if upsert:
            wanted = to_send(batch, checker.phase, rows)
        else:  # a teardown deletes every resource it names
            wanted = [c for c in batch if c.kind is Kind.RESOURCE and c.remote]
        return [
            Send(c, credentials_for(c, rows, connections, self.secrets, self.keyring))
            for c in wanted
        ]

    def _turn(self) -> AbstractContextManager[object]:
        """One write transaction at a time where the database has one writer (SQLite): the
        writer threads of this process, then (``--workers``) the processes, take turns, so
        none spins in SQLite's busy handler while another commits."""
        if self.engine.dialect.name != "sqlite":
            return nullcontext()
        return turn(self._threads_turn, self.options.write_turn)

    def _write_batch(self, batch: list[Upsert], own: Upsert) -> None:
        """A batch of the ``Combiner``, which holds this process's turn: the processes' turn
        (``--workers`` on SQLite), then the upserts."""
        processes = self.options.write_turn
        with processes() if processes is not None else nullcontext():
            self._upsert(batch, own)

    def _upsert(self, batch: list[Upsert], own: Upsert) -> None:
        """Upserts in one transaction with one audit writer: ``own`` (this thread's) takes
        the lock, the others are held by their own threads (``batches``). Each is checked
        against the plan's state of it first; ``Upsert.ok`` stays None when that moved on."""
        with Session(self.engine, autoflush=False) as s, s.begin():
            log.debug("%s: taking the organization's lock", own.org)
            lock_organization(s, own.org, timeout=self.options.lock_timeout, holder=self.holder)
            audit = self._audit(s)
            new = NewRows()
            writers: list[tuple[Upsert, OrgWriter]] = []
            for job in batch:
                rows = job.sent.rows
                if rows is not None:  # read and checked under the lock held since
                    rows.attach(s)
                else:
                    rows = OrgRows.load(s, job.org)
                    if not self._unchanged(s, job.org, rows, job.changes):
                        continue
                writer = self._writer(s, audit, rows, job.checker, job.sent.outcomes, into=new)
                writers.append((job, writer))
            done = upsert_together([(w, job.upserts) for job, w in writers])
            for (job, writer), ok in zip(writers, done, strict=True):
                job.ok = ok
                writer.finish()
            new.write(s)

    def _unchanged(self, s: Session, org: str, rows: OrgRows, changes: list[Change]) -> bool:
        """Whether the organization's rows are still what the plan saw; if not, every change
        of the organization is reported failed, naming who wrote it."""
        if plan_signature(rows.observed()) == plan_signature(self.observed.of(org)):
            return True
        by = last_writer(s, org)
        for ch in changes:
            self.report.outcomes.append(
                ChangeResult.of(
                    ch,
                    Status.FAILED,
                    f"{org} changed in the database while this apply ran ({by}); "
                    "nothing was written for it. Run plan and apply again.",
                )
            )
        return False

    def _rows(
        self, s: Session, org: str, changes: list[Change], *, check: bool, durable: bool = False
    ) -> OrgRows | None:
        """Lock the organization and read its rows; with ``check``, None (reported) when they
        are no longer what the plan saw; ``durable``: the commit must survive a power loss."""
        log.debug("%s: taking the organization's lock", org)
        lock_organization(
            s, org, timeout=self.options.lock_timeout, holder=self.holder, durable=durable
        )
        rows = OrgRows.load(s, org)
        if check and not self._unchanged(s, org, rows, changes):
            return None
        return rows

    def _open(
        self,
        s: Session,
        org: str,
        changes: list[Change],
        checker: Checker,
        *,
        check: bool,
        outcomes: Mapping[str, Outcome] | None = None,
    ) -> OrgWriter | None:
        """A writer of the organization's changes on its locked rows (``_rows``); None when
        they are no longer what the plan saw."""
        rows = self._rows(s, org, changes, check=check)
        if rows is None:
            return None
        return self._writer(s, self._audit(s), rows, checker, outcomes)

    def _audit(self, s: Session) -> AuditWriter:
        o = self.options
        return AuditWriter(s, self.keyring, o.actor, o.method, o.git_commit)

    def _writer(
        self,
        s: Session,
        audit: AuditWriter,
        rows: OrgRows,
        checker: Checker,
        outcomes: Mapping[str, Outcome] | None,
        into: NewRows | None = None,
    ) -> OrgWriter:
        return OrgWriter(
            s,
            audit,
            rows,
            self.catalog,
            self.keyring,
            self.secrets,
            checker.phase,
            self.report.outcomes,
            self.calls,
            outcomes,
            into,
        )
