"""Phase 2 of apply: one organization's writes, in one transaction under its lock.

The organization's rows are read once, after the lock, and must still be what the plan saw;
then every write is made on those rows in memory and flushed in a few batches (instances,
then connections, then everything else at commit), so an organization costs a few dozen
statements however many changes it has.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from reconciler.apply.checks import CheckPhase, uses_new_credentials
from reconciler.apply.outcome import Outcome
from reconciler.apply.records import health_row
from reconciler.audit import AuditWriter
from reconciler.core.catalog import Catalog
from reconciler.core.desired import DesiredConnection
from reconciler.core.plan import Action, Change
from reconciler.core.state import (
    ObservedConnection,
    ObservedCredential,
    ObservedInstance,
    ObservedResource,
)
from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.schema import Connection, Credential, Health, Instance, Resource

log = logging.getLogger("reconciler.apply")


@dataclass
class OrgRows:
    """An organization's rows, read once inside its locked transaction."""

    instances: dict[str, Instance] = field(default_factory=dict)  # by provider
    connections: dict[int, list[Connection]] = field(default_factory=dict)  # by instance id
    credentials: dict[int, list[Credential]] = field(default_factory=dict)  # by connection id
    resources: dict[tuple[int, str, str], Resource] = field(default_factory=dict)

    @classmethod
    def load(cls, s: Session, organization: str) -> OrgRows:
        rows = cls()
        for inst in s.scalars(select(Instance).where(Instance.organization == organization)):
            rows.instances[inst.provider] = inst
        ids = [i.id for i in rows.instances.values()]
        if not ids:
            return rows
        for c in s.scalars(select(Connection).where(Connection.instance_id.in_(ids))):
            rows.connections.setdefault(c.instance_id, []).append(c)
        conn_ids = [c.id for cs in rows.connections.values() for c in cs]
        if conn_ids:
            for cr in s.scalars(select(Credential).where(Credential.connection_id.in_(conn_ids))):
                rows.credentials.setdefault(cr.connection_id, []).append(cr)
        for r in s.scalars(select(Resource).where(Resource.instance_id.in_(ids))):
            rows.resources[(r.instance_id, r.kind, r.identity)] = r
        return rows

    def managed(self, inst: Instance) -> Connection | None:
        return next(
            (c for c in self.connections.get(inst.id, []) if c.managed_by == "manifest"), None
        )

    def observed(self) -> list[ObservedInstance]:
        """These rows as the planner's records (only what ``plan_signature`` compares)."""
        out = []
        for provider, i in sorted(self.instances.items()):
            conns = tuple(
                ObservedConnection(
                    id=c.id,
                    user_email=c.user_email,
                    status=c.status,
                    managed_by=c.managed_by,
                    deletion_policy=c.deletion_policy,
                    prevent_destroy=c.prevent_destroy,
                    credentials={
                        x.field: ObservedCredential(
                            x.id, x.field, x.key_id, x.fingerprint, x.fingerprint_key_id
                        )
                        for x in self.credentials.get(c.id, [])
                    },
                )
                for c in self.connections.get(i.id, [])
            )
            res = tuple(
                ObservedResource(
                    r.id, r.kind, r.identity, json.loads(r.spec), r.is_default, r.managed_by
                )
                for (iid, _, _), r in self.resources.items()
                if iid == i.id
            )
            out.append(
                ObservedInstance(i.id, i.organization, provider, i.status, i.managed_by, conns, res)
            )
        return out


class OrgWriter:
    """Writes one organization's changes on its rows; appends outcomes to ``report``."""

    def __init__(
        self,
        s: Session,
        audit: AuditWriter,
        rows: OrgRows,
        catalog: Catalog,
        keyring: KeyRing,
        phase: CheckPhase,
        conn_of: Callable[[Change], DesiredConnection | None],
        report: list[Outcome],
    ) -> None:
        self.s, self.audit, self.rows = s, audit, rows
        self.catalog, self.keyring, self.phase = catalog, keyring, phase
        self.conn_of, self.report = conn_of, report
        self.now = datetime.now(UTC)
        # new rows nothing else in this transaction refers to: inserted together by ``finish``
        self._new: dict[type, list[dict[str, Any]]] = {Credential: [], Health: [], Resource: []}

    def finish(self) -> None:
        """Flush the unit of work (updates and deletes), then insert the new rows, one
        statement per table."""
        self.s.flush()
        for model in (Credential, Health, Resource):
            rows, self._new[model] = self._new[model], []
            if rows:
                self.s.execute(insert(model), rows)

    # -- creates and updates -------------------------------------------------------------------

    def upsert(self, changes: list[Change]) -> bool:
        """Connections first (in the given, dependency, order), then resources. False when
        anything failed (its organization's deletions then wait)."""
        ok = True
        conns = [c for c in changes if c.kind == "connection"]
        plans = {c.address: self._decide(c) for c in conns}
        self._create_instances(conns, plans)
        self._create_connections(conns, plans)
        failed: set[str] = set()
        for ch in conns:
            if not self._write_connection(ch, plans[ch.address]):
                failed.add(ch.address)
                ok = False
        for ch in changes:
            if ch.kind != "resource":
                continue
            parent = f"{ch.organization}/{ch.provider}"
            if ch.address in self.phase.rejected:
                ok = False
                self.report.append(
                    Outcome(ch.address, ch.action.value, "failed", self.phase.rejected[ch.address])
                )
            elif parent in failed:
                self.report.append(
                    Outcome(
                        ch.address,
                        ch.action.value,
                        "skipped",
                        f"not written: {parent} did not connect",
                    )
                )
            else:
                self.resource(ch)
        return ok

    def _decide(self, ch: Change) -> dict[str, Any]:
        """What the check's verdict means for this connection, before anything is written."""
        result = self.phase.results.get(ch.address)
        inst = self.rows.instances.get(ch.provider)
        row = self.rows.managed(inst) if inst is not None else None
        conn = self.conn_of(ch)
        assert conn is not None
        if ch.action is Action.ADOPT and inst is not None:
            row = next(
                (c for c in self.rows.connections.get(inst.id, []) if c.user_email == conn.owner),
                None,
            )
        had_working = (
            row is not None
            and row.status == "connected"
            and bool(self.rows.credentials.get(row.id))
        )
        blocked = ch.address in self.phase.blocked
        failed = result is not None and not result.healthy
        if failed and had_working:
            status = None  # a failed rotation keeps the working credential and statuses
        elif failed:
            status = ("error", "error")
        elif result is not None:
            status = ("active" if conn.active else "inactive", "connected")
        else:
            # nothing was checked (inactive, or only settings changed): no status is earned
            # here, so an existing one stands, and a deactivated instance is inactive
            kept = inst.status if inst is not None and inst.status != "inactive" else "active"
            status = (
                kept if conn.active else "inactive",
                row.status if row is not None else "connected",
            )
        return {
            "conn": conn,
            "result": result,
            "row": row,
            "had_working": had_working,
            "blocked": blocked,
            "failed": failed,
            "status": status,
        }

    def _create_instances(self, conns: list[Change], plans: dict[str, dict[str, Any]]) -> None:
        new = []
        for ch in conns:
            p = plans[ch.address]
            if p["blocked"] or ch.provider in self.rows.instances:
                continue
            inst_status = p["status"][0] if p["status"] else "error"
            inst = Instance(
                organization=ch.organization,
                provider=ch.provider,
                status=inst_status,
                managed_by="manifest",
                created_at=self.now,
                updated_at=self.now,
            )
            self.rows.instances[ch.provider] = inst
            new.append(inst)
        if new:
            self.s.add_all(new)
            self.s.flush()

    def _create_connections(self, conns: list[Change], plans: dict[str, dict[str, Any]]) -> None:
        new = []
        for ch in conns:
            p = plans[ch.address]
            if p["blocked"] or p["row"] is not None:
                continue
            inst = self.rows.instances[ch.provider]
            row = Connection(
                instance_id=inst.id,
                user_email=p["conn"].owner,
                status=p["status"][1] if p["status"] else "error",
                managed_by="manifest",
                created_at=self.now,
                updated_at=self.now,
            )
            self.rows.connections.setdefault(inst.id, []).append(row)
            p["row"] = row
            new.append(row)
        if new:
            self.s.add_all(new)
            self.s.flush()

    def _write_connection(self, ch: Change, p: dict[str, Any]) -> bool:
        conn: DesiredConnection = p["conn"]
        if p["blocked"]:
            dep = self.phase.blocked[ch.address]
            self.audit.record(
                ch.organization, "connection.blocked", ch.address, {"dependency": dep}
            )
            self.report.append(
                Outcome(
                    ch.address,
                    ch.action.value,
                    "blocked",
                    f"blocked: {ch.organization}/{dep} did not connect, so {ch.address}, which "
                    "depends on it, was not connected",
                )
            )
            return False
        inst = self.rows.instances[ch.provider]
        row: Connection = p["row"]
        result = p["result"]
        if ch.action is Action.ADOPT:
            inst.managed_by = "manifest"
            row.managed_by = "manifest"
        row.deletion_policy = conn.deletion_policy
        row.prevent_destroy = conn.prevent_destroy
        row.updated_at = self.now
        verb = {Action.CREATE: "create", Action.UPDATE: "update", Action.ADOPT: "adopt"}[ch.action]
        rotating = p["had_working"] and any(c.startswith("credentials.") for c in ch.changed)
        if rotating and result is not None:
            # verify before swap: the new credential was checked while the old one kept
            # working; the attempt and its outcome are audited separately
            self.audit.record(
                ch.organization,
                "credential.rotation_attempt",
                ch.address,
                {
                    "fields": sorted(
                        c.split(".", 1)[1] for c in ch.changed if c.startswith("credentials.")
                    ),
                    "health": result.status,
                },
            )
        if result is not None:
            self._new[Health].append(_columns(health_row(inst.id, row.id, result)))
        if p["failed"]:
            self.audit.record(
                ch.organization,
                f"connection.{verb}_failed",
                ch.address,
                {
                    "failure_type": result.failure_type,
                    "message": result.message,
                    "provider_code": result.provider_code,
                    "changed": list(ch.changed),
                },
            )
            if p["status"] is not None:
                # a failed first connection keeps no credentials; its statuses say error
                for cr in self.rows.credentials.pop(row.id, []):
                    self.s.delete(cr)
                inst.status, row.status = p["status"]
            self.report.append(
                Outcome(ch.address, ch.action.value, "failed", result.message, result.failure_type)
            )
            return False
        envelopes = self.phase.envelopes.get(ch.address) or {}
        if envelopes:
            row.user_email = conn.owner
            self._store_credentials(
                row,
                conn,
                envelopes,
                replace_all=uses_new_credentials(ch),
                expires_at=self.phase.expiry.get(ch.address),
            )
        inst.status, row.status = p["status"]
        inst.updated_at = self.now
        if result is not None:
            row.identity = json.dumps(dict(result.identity), sort_keys=True)
        details: dict[str, Any] = {"changed": list(ch.changed), "reason": ch.reason}
        if result is not None:
            details["health"] = result.message
            details["response_ms"] = result.response_ms
        self.audit.record(ch.organization, f"connection.{verb}", ch.address, details)
        display = self.catalog.providers[ch.provider].display_name
        msg = (
            result.message
            if result is not None
            else (f"{display} is inactive" if not conn.active else ch.reason)
        )
        # "adopted", not "adoptd" (every other verb ends in e)
        self.report.append(Outcome(ch.address, ch.action.value, f"{verb.rstrip('e')}ed", msg))
        return True

    def _store_credentials(
        self,
        row: Connection,
        conn: DesiredConnection,
        envelopes: dict[str, str],
        *,
        replace_all: bool,
        expires_at: datetime | None,
    ) -> None:
        """Store envelopes; the fingerprint is of the value the manifest named (so a provider
        that rotates a refresh token does not make the plan see a change)."""
        existing = self.rows.credentials.get(row.id, [])
        keep = []
        for cr in existing:
            if replace_all or cr.field in envelopes:
                self.s.delete(cr)
            else:
                keep.append(cr)
        for name, env in sorted(envelopes.items()):
            addr = CredentialAddress(conn.organization, conn.provider, conn.owner, name)
            named = conn.credentials.get(name)
            value = named.reveal() if named is not None else self.keyring.decrypt(env, addr)
            self._new[Credential].append(
                {
                    "connection_id": row.id,
                    "field": name,
                    "ciphertext": env,
                    "key_id": self.keyring.key_id_of(env),
                    "fingerprint": self.keyring.fingerprint(value, addr),
                    "fingerprint_key_id": self.keyring.primary_id,
                    "expires_at": expires_at if name == "access_token" else None,
                    "created_at": self.now,
                }
            )
        self.rows.credentials[row.id] = keep

    # -- resources -------------------------------------------------------------------------------

    def resource(self, ch: Change) -> None:
        assert ch.resource_kind is not None and ch.identity is not None
        inst = self.rows.instances.get(ch.provider)
        key = (inst.id, ch.resource_kind, ch.identity) if inst is not None else None
        existing = self.rows.resources.get(key) if key else None
        if ch.action is Action.DELETE:
            if existing is not None and key is not None:
                self.s.delete(existing)
                del self.rows.resources[key]
            self.audit.record(ch.organization, "resource.delete", ch.address, {"reason": ch.reason})
            self.report.append(Outcome(ch.address, "delete", "deleted", ch.reason))
            return
        assert inst is not None and key is not None and ch.after is not None
        spec = json.dumps(dict(ch.after), sort_keys=True)
        is_default = bool(ch.after.get("default", False))
        if existing is None:
            self._new[Resource].append(
                {
                    "instance_id": inst.id,
                    "kind": ch.resource_kind,
                    "identity": ch.identity,
                    "spec": spec,
                    "is_default": is_default,
                    "managed_by": "manifest",
                    "created_at": self.now,
                    "updated_at": self.now,
                }
            )
            verb = "create"
        else:
            existing.spec, existing.is_default = spec, is_default
            existing.managed_by, existing.updated_at = "manifest", self.now
            verb = "update"
        self.audit.record(
            ch.organization,
            f"resource.{verb}",
            ch.address,
            {"reason": ch.reason, "changed": list(ch.changed)},
        )
        self.report.append(Outcome(ch.address, ch.action.value, f"{verb}d", ch.reason))

    # -- teardown --------------------------------------------------------------------------------

    def teardown(self, ch: Change) -> None:
        inst = self.rows.instances.get(ch.provider)
        if inst is None:
            self.report.append(Outcome(ch.address, ch.action.value, "skipped", "already gone"))
            return
        row = self.rows.managed(inst)
        if ch.action is Action.ORPHAN:
            if row is not None:
                row.managed_by = "orphaned"
            if self.rows.managed(inst) is None:
                inst.managed_by = "orphaned"
                for (iid, _, _), r in self.rows.resources.items():
                    if iid == inst.id:
                        r.managed_by = "orphaned"
            self.audit.record(
                ch.organization, "connection.orphan", ch.address, {"reason": ch.reason}
            )
            self.report.append(Outcome(ch.address, "orphan", "orphaned", ch.reason))
            return
        # statements in dependency order, not the unit of work: rows that ON DELETE CASCADE
        # removes must not be deleted a second time (pending unit-of-work deletes go first)
        self.s.flush()
        others = [c for c in self.rows.connections.get(inst.id, []) if c is not row]
        if row is not None:
            self.s.execute(delete(Credential).where(Credential.connection_id == row.id))
            self.s.execute(delete(Health).where(Health.connection_id == row.id))
            self.s.execute(delete(Connection).where(Connection.id == row.id))
            for obj in [row, *self.rows.credentials.pop(row.id, [])]:
                self.s.expunge(obj)
            self.rows.connections[inst.id] = others
        if not others:
            self.s.execute(delete(Resource).where(Resource.instance_id == inst.id))
            self.s.execute(delete(Health).where(Health.instance_id == inst.id))
            self.s.execute(delete(Instance).where(Instance.id == inst.id))
            for key in [k for k in self.rows.resources if k[0] == inst.id]:
                self.s.expunge(self.rows.resources.pop(key))
            self.s.expunge(inst)
            del self.rows.instances[ch.provider]
        self.audit.record(ch.organization, "connection.delete", ch.address, {"reason": ch.reason})
        self.report.append(Outcome(ch.address, "delete", "deleted", ch.reason))


def _columns(row: Any) -> dict[str, Any]:
    """The column values of a not-yet-added ORM row, for a bulk insert."""
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key != "id"}
