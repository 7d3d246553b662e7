"""Apply's connection side: the rows one connection change writes, for ``OrgWriter``.

A create, update or adoption sets its instance and connection rows (new ones inserted with
their final values, one INSERT ... RETURNING per table for the whole batch), its health
row, its stored credentials, its audit entries and its result; a deletion or an orphaning
removes or releases the connection, and its instance with the resources when it was the last.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from reconciler.apply.checks import CheckPhase, uses_new_credentials
from reconciler.apply.decisions import Decision
from reconciler.apply.results import ChangeResult, Status
from reconciler.apply.rows import health_values
from reconciler.audit import AuditWriter
from reconciler.core.catalog import Catalog
from reconciler.core.changes import Action, Attr, Change, ConnectionSpec, audit_action
from reconciler.core.remote import is_signing_secret_field
from reconciler.core.secret import Secret
from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.bulk import table_of
from reconciler.db.records import OrgRows
from reconciler.db.schema import Connection, Credential, Health, Instance, Resource

_INSTANCES = table_of(Instance)
_CONNECTIONS = table_of(Connection)
# new instances and connections, with the ids they were given (built once: SQLAlchemy works out
# a statement's cache key once, not per batch)
_INSERT_INSTANCES = insert(_INSTANCES).returning(
    _INSTANCES.c.id, _INSTANCES.c.organization, _INSTANCES.c.provider
)
_INSERT_CONNECTIONS = insert(_CONNECTIONS).returning(
    _CONNECTIONS.c.id, _CONNECTIONS.c.instance_id, _CONNECTIONS.c.user_email
)


class ConnectionWriter:
    """``OrgWriter``'s connection side: the instance, connection, health and credential rows of
    a connection change, and its teardown. The attributes are ``OrgWriter``'s."""

    s: Session
    audit: AuditWriter
    rows: OrgRows
    catalog: Catalog
    keyring: KeyRing
    secrets: Mapping[str, Secret]
    phase: CheckPhase
    report: list[ChangeResult]
    now: datetime
    _new: dict[type, list[dict[str, Any]]]

    # The row values a change sets are worked out first: a new instance or connection is
    # inserted with its final values (one INSERT ... RETURNING per table for the organizations
    # of the batch, ``create_rows``, no UPDATE after it); an existing one is changed on its ORM
    # row, which the unit of work flushes at ``finish``.

    def _instance_columns(self, d: Decision) -> dict[str, Any]:
        """What this change sets on its instance row."""
        cols: dict[str, Any] = {}
        if d.change.action is Action.ADOPT:
            cols["managed_by"] = "manifest"
        if d.statuses is not None:
            cols["status"] = d.statuses[0]
        if not d.failed:
            cols["updated_at"] = self.now
        return cols

    def _connection_columns(self, d: Decision) -> dict[str, Any]:
        """What this change sets on its connection row: its settings always; its statuses
        when the verdict earns them (a failed rotation keeps the working ones); the owner of
        the credentials it stores and the identity the check found when it connected."""
        conn, result = d.conn, d.result
        cols: dict[str, Any] = {
            "deletion_policy": conn.deletion_policy,
            "prevent_destroy": conn.prevent_destroy,
            "updated_at": self.now,
        }
        if d.change.action is Action.ADOPT:
            cols["managed_by"] = "manifest"
        if d.statuses is not None:
            cols["status"] = d.statuses[1]
        if not d.failed:
            if self.phase.envelopes.get(d.change.address):
                cols["user_email"] = conn.owner
            if result is not None:
                cols["identity"] = json.dumps(dict(result.identity), sort_keys=True)
        return cols

    def _new_instances(self, decisions: list[Decision]) -> list[dict[str, Any]]:
        """Set what the changes set on their existing instance rows; the rows of the new ones
        (inserted by ``create_rows``)."""
        new: list[dict[str, Any]] = []
        for d in decisions:
            if d.blocked:
                continue
            inst = self.rows.instances.get(d.change.provider)
            if inst is not None:
                for column, value in self._instance_columns(d).items():
                    setattr(inst, column, value)
                continue
            new.append(
                {
                    "organization": d.change.organization,
                    "provider": d.change.provider,
                    "status": "error",
                    "managed_by": "manifest",
                    "created_at": self.now,
                    "updated_at": self.now,
                    **self._instance_columns(d),
                }
            )
        return new

    def _new_connections(self, decisions: list[Decision]) -> list[tuple[Decision, dict[str, Any]]]:
        """As ``_new_instances``, for the connection rows (their instances exist by now)."""
        new: list[tuple[Decision, dict[str, Any]]] = []
        for d in decisions:
            if d.blocked:
                continue
            if d.row is not None:
                for column, value in self._connection_columns(d).items():
                    setattr(d.row, column, value)
                continue
            values = {
                "instance_id": self.rows.instances[d.change.provider].id,
                "user_email": d.conn.owner,
                "status": "error",
                "managed_by": "manifest",
                "identity": "{}",
                "created_at": self.now,
                **self._connection_columns(d),
            }
            new.append((d, values))
        return new

    def _write_connection(self, d: Decision) -> bool:
        """The audit entries, health row, credentials and result of one connection change
        (its row's columns are set by ``create_rows``)."""
        ch, conn, result = d.change, d.conn, d.result
        if d.blocked:
            dep = self.phase.blocked[ch.address]
            self.audit.record(
                ch.organization, "connection.blocked", ch.address, {"dependency": dep}
            )
            self.report.append(
                ChangeResult.of(
                    ch,
                    Status.BLOCKED,
                    f"blocked: {ch.organization}/{dep} did not connect, so {ch.address}, which "
                    "depends on it, was not connected",
                )
            )
            return False
        inst = self.rows.instances[ch.provider]
        row = d.row
        assert row is not None
        rotating = d.had_working and Attr.CREDENTIALS in ch.changed
        if rotating and result is not None:
            # verify before swap: the new credential was checked while the old one kept
            # working; the attempt and its outcome are audited separately
            self.audit.record(
                ch.organization,
                "credential.rotation_attempt",
                ch.address,
                {"fields": sorted(ch.credentials), "health": result.status},
            )
        if result is not None:
            self._new[Health].append(health_values(inst.id, row.id, result))
        if d.failed:
            assert result is not None
            self.audit.record(
                ch.organization,
                audit_action(ch.kind, ch.action, failed=True),
                ch.address,
                {
                    "failure_type": result.failure_type,
                    "message": result.message,
                    "provider_code": result.provider_code,
                    "changed": list(ch.changed_names()),
                },
            )
            if d.statuses is not None:
                # a failed first connection keeps no credentials; its statuses say error
                for cr in self.rows.credentials.pop(row.id, []):
                    self.s.delete(cr)
            self.report.append(
                ChangeResult.of(ch, Status.FAILED, result.message, failure_type=result.failure_type)
            )
            return False
        envelopes = self.phase.envelopes.get(ch.address) or {}
        if envelopes:
            self._store_credentials(
                row,
                ch,
                conn,
                envelopes,
                replace_all=uses_new_credentials(ch),
                expires_at=self.phase.expiry.get(ch.address),
            )
        details: dict[str, Any] = {"changed": list(ch.changed_names()), "reason": ch.reason}
        if result is not None:
            details["health"] = result.message
            details["response_ms"] = result.response_ms
        self.audit.record(ch.organization, audit_action(ch.kind, ch.action), ch.address, details)
        display = self.catalog.providers[ch.provider].display_name
        msg = (
            result.message
            if result is not None
            else (f"{display} is inactive" if not conn.active else ch.reason)
        )
        self.report.append(ChangeResult.of(ch, Status.DONE, msg))
        return True

    def _store_credentials(
        self,
        row: Connection,
        ch: Change,
        conn: ConnectionSpec,
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
            # a resource's signing secret (SPEC section 8) is not the manifest's to replace
            if cr.field in envelopes or (replace_all and not is_signing_secret_field(cr.field)):
                self.s.delete(cr)
            else:
                keep.append(cr)
        for name, env in sorted(envelopes.items()):
            addr = CredentialAddress(ch.organization, ch.provider, conn.owner, name)
            ref = conn.credential(name)
            value = (
                self.secrets[ref.variable].reveal()
                if ref is not None
                else self.keyring.decrypt(env, addr)
            )
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

    def _teardown_connection(self, ch: Change) -> None:
        inst = self.rows.instances.get(ch.provider)
        if inst is None:
            self.report.append(ChangeResult.of(ch, Status.SKIPPED, "already gone"))
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
                ch.organization,
                audit_action(ch.kind, Action.ORPHAN),
                ch.address,
                {"reason": ch.reason},
            )
            self.report.append(ChangeResult.of(ch, Status.DONE, ch.reason, done=Action.ORPHAN))
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
        self.audit.record(
            ch.organization,
            audit_action(ch.kind, Action.DELETE),
            ch.address,
            {"reason": ch.reason},
        )
        self.report.append(ChangeResult.of(ch, Status.DONE, "", done=Action.DELETE))


def create_rows(s: Session, decided: Sequence[tuple[ConnectionWriter, list[Decision]]]) -> None:
    """The new instance rows, then the new connection rows, of the changes of several
    organizations' writers in one transaction: one INSERT ... RETURNING per table for all of
    them (a batch of upserts, ``batches``), each writer's rows given their ids."""
    instances = [(w, v) for w, ds in decided for v in w._new_instances(ds)]
    if instances:
        ids = {
            (org, provider): id_
            for id_, org, provider in s.execute(_INSERT_INSTANCES, [v for _, v in instances])
        }
        for w, v in instances:
            # not in the session: every column it will have is in its INSERT
            w.rows.instances[v["provider"]] = Instance(
                id=ids[(v["organization"], v["provider"])], **v
            )
    connections = [(w, d, v) for w, ds in decided for d, v in w._new_connections(ds)]
    if connections:
        ids = {
            (instance_id, user): id_
            for id_, instance_id, user in s.execute(
                _INSERT_CONNECTIONS, [v for _, _, v in connections]
            )
        }
        for w, d, v in connections:
            row = Connection(id=ids[(v["instance_id"], v["user_email"])], **v)
            w.rows.connections.setdefault(row.instance_id, []).append(row)
            d.row = row
