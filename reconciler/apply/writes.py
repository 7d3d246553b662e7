"""Phase 2 of apply: one organization's writes, in one transaction under its lock.

The organization's rows are read once, after the lock, and must still be what the plan saw;
then every write is made on those rows in memory and flushed in a few batches (instances,
then connections, then everything else at commit), so an organization costs a few dozen
statements however many changes it has.

``OrgWriter`` holds the transaction's state, orders the changes and flushes them; what one
change writes is by kind: ``ConnectionWriter`` (``connection_writes.py``) and
``ResourceWriter`` (``resource_writes.py``, with its provider side in ``remote.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from reconciler.apply.checks import CheckPhase
from reconciler.apply.connection_writes import ConnectionWriter, create_rows
from reconciler.apply.decisions import Decision, decide
from reconciler.apply.remote import SETTLE, Outcome, ProviderCalls
from reconciler.apply.resource_writes import ResourceWriter
from reconciler.apply.results import ChangeResult, Status
from reconciler.apply.sends import not_connecting
from reconciler.audit import AuditWriter
from reconciler.core.catalog import Catalog
from reconciler.core.changes import Change, ConnectionSpec, Kind
from reconciler.core.secret import Secret
from reconciler.crypto import KeyRing
from reconciler.db.bulk import insert_rows, table_of
from reconciler.db.records import OrgRows
from reconciler.db.schema import Credential, Health, Instance, Resource
from reconciler.incidents import record_health_rows

log = logging.getLogger("reconciler.apply")


class NewRows:
    """New rows of one or more organizations' writers in one transaction, written together:
    one statement per table (a batch of upserts: one for the batch, not one per
    organization); the pending creates the providers answered are settled, and the new
    health rows open or resolve incidents, with them."""

    def __init__(self) -> None:
        self.settled: list[dict[str, str]] = []
        self.instances: list[Instance] = []
        self.new: dict[type, list[dict[str, Any]]] = {Credential: [], Health: [], Resource: []}

    def write(self, s: Session) -> None:
        if self.settled:
            s.execute(SETTLE, self.settled)
        record_health_rows(s, self.instances, self.new[Health])
        for model in (Credential, Health, Resource):
            insert_rows(s, table_of(model), self.new[model])


class OrgWriter(ConnectionWriter, ResourceWriter):
    """Writes one organization's changes on its rows; appends results to ``report``."""

    def __init__(
        self,
        s: Session,
        audit: AuditWriter,
        rows: OrgRows,
        catalog: Catalog,
        keyring: KeyRing,
        secrets: Mapping[str, Secret],
        phase: CheckPhase,
        report: list[ChangeResult],
        calls: ProviderCalls | None = None,
        outcomes: Mapping[str, Outcome] | None = None,
        into: NewRows | None = None,
    ) -> None:
        self.s, self.audit, self.rows = s, audit, rows
        self.calls = calls
        # what the providers did for the changes sent before this transaction (by address)
        self.outcomes = outcomes or {}
        # the connections this apply writes, as the plan wants them (their new credentials)
        self.connections: dict[str, ConnectionSpec] = {}
        self.catalog, self.keyring, self.phase = catalog, keyring, phase
        self.secrets, self.report = secrets, report
        self.now = datetime.now(UTC)
        # new rows nothing else in this transaction refers to, inserted together: by
        # ``finish``, or (``into``) with the other organizations' of the batch by its caller
        self.out = into if into is not None else NewRows()
        self._owns_out = into is None
        self._new, self._settled = self.out.new, self.out.settled

    def finish(self) -> None:
        """Flush the unit of work (updates and deletes); then, unless they go with a batch's
        (``into``), insert the new rows, one statement per table."""
        self.s.flush()
        self.out.instances += self.rows.instances.values()
        if self._owns_out:
            self.out.write(self.s)

    # -- creates and updates -------------------------------------------------------------------

    def _decisions(self, changes: list[Change]) -> list[Decision]:
        for c in changes:
            if c.kind is Kind.CONNECTION and c.connection is not None:
                self.connections[c.provider] = c.connection
        return [decide(c, self.phase, self.rows) for c in changes if c.kind is Kind.CONNECTION]

    def _upserted(self, changes: list[Change], decisions: list[Decision]) -> bool:
        """Write ``changes`` (connections first, then resources) once their new instance and
        connection rows exist (``create_rows``); False when anything failed."""
        ok = True
        failed = not_connecting(decisions)
        for d in decisions:
            written = self._write_connection(d)
            assert written is (d.change.address not in failed)
            ok = ok and written
        for ch in changes:
            if ch.kind is Kind.CONNECTION:
                continue  # written above
            if ch.address in self.phase.rejected:
                ok = False
                self.report.append(
                    ChangeResult.of(ch, Status.FAILED, self.phase.rejected[ch.address])
                )
            elif ch.parent in failed:
                self.report.append(
                    ChangeResult.of(ch, Status.SKIPPED, f"not written: {ch.parent} did not connect")
                )
            else:
                self.resource(ch)
        return ok

    # -- teardown --------------------------------------------------------------------------------

    def teardown(self, ch: Change) -> None:
        """A deletion or an orphaning, by kind of change."""
        match ch.kind:
            case Kind.CONNECTION:
                self._teardown_connection(ch)
            case Kind.RESOURCE:
                self.resource(ch)


def upsert_together(jobs: Sequence[tuple[OrgWriter, list[Change]]]) -> list[bool]:
    """The creates and updates of several organizations' writers in one transaction, each
    organization's connections first (in the given, dependency, order), then its resources;
    their new instances and connections inserted together (``create_rows``). For each, False
    when anything failed (its organization's deletions then wait)."""
    decided = [(w, w._decisions(changes)) for w, changes in jobs]
    if decided:
        create_rows(decided[0][0].s, decided)
    return [w._upserted(changes, ds) for (w, changes), (_, ds) in zip(jobs, decided, strict=True)]
