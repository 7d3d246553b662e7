"""Apply's resource side: the row one resource change writes, for ``OrgWriter``.

The provider's answer comes first (``ProviderSideWriter``): a failed call writes nothing, so
the next plan proposes the same step again; otherwise the resource row is inserted, updated or
deleted with what the provider remembered, with its signing secret, audit entry and result.
"""

from __future__ import annotations

import json

from reconciler.apply.remote import (
    NOT_AT_PROVIDER,
    ProviderSideWriter,
    remembered,
    remote_details,
    say,
)
from reconciler.apply.results import ChangeResult, Status
from reconciler.audit import AuditWriter
from reconciler.core.changes import Action, Change, ResourceSpec, audit_action
from reconciler.db.schema import Resource


class ResourceWriter(ProviderSideWriter):
    """``OrgWriter``'s resource side: a resource change's row, at the provider first. The
    attributes are ``OrgWriter``'s."""

    audit: AuditWriter
    report: list[ChangeResult]

    def resource(self, ch: Change) -> None:
        spec = ch.resource
        assert spec is not None
        inst = self.rows.instances.get(ch.provider)
        key = (inst.id, spec.kind, spec.identity) if inst is not None else None
        existing = self.rows.resources.get(key) if key else None
        outcome = self._at_provider(ch) if ch.remote else None
        if outcome is not None and outcome.error is not None:
            # nothing is written for it: the next plan proposes the same step again
            self.audit.record(
                ch.organization,
                audit_action(ch.kind, ch.action, failed=True),
                ch.address,
                {"reason": ch.reason, "provider_error": outcome.error},
            )
            self.report.append(ChangeResult.of(ch, Status.FAILED, outcome.error))
            return
        said = say(outcome, self._display(ch)) if outcome is not None else ""
        if outcome is not None:
            self._recorded(ch, outcome)
        if ch.action is Action.DELETE:
            if existing is not None and key is not None:
                self.s.delete(existing)
                del self.rows.resources[key]
            self._forget_secret(ch)
            self.audit.record(
                ch.organization,
                audit_action(ch.kind, Action.DELETE),
                ch.address,
                {"reason": ch.reason, **remote_details(outcome)},
            )
            self.report.append(ChangeResult.of(ch, Status.DONE, said or "", done=Action.DELETE))
            return
        assert inst is not None and key is not None and isinstance(ch.after, ResourceSpec)
        stored = json.dumps(dict(ch.after.spec), sort_keys=True)
        at_provider = remembered(outcome) if outcome is not None else {}
        if existing is None:
            self._new[Resource].append(
                {
                    "instance_id": inst.id,
                    "kind": spec.kind,
                    "identity": spec.identity,
                    "spec": stored,
                    "is_default": ch.after.is_default,
                    "managed_by": "manifest",
                    "created_at": self.now,
                    "updated_at": self.now,
                    **NOT_AT_PROVIDER,
                    **at_provider,
                }
            )
            done = Action.ADOPT if ch.action is Action.ADOPT else Action.CREATE
        else:
            existing.spec, existing.is_default = stored, ch.after.is_default
            existing.managed_by, existing.updated_at = "manifest", self.now
            for column, value in at_provider.items():
                setattr(existing, column, value)
            done = ch.action if ch.action is not Action.ORPHAN else Action.UPDATE
        secret = self._secret_of(outcome) if outcome is not None else None
        if secret is not None:
            self._store_secret(ch, secret)
        self.audit.record(
            ch.organization,
            audit_action(ch.kind, done),
            ch.address,
            {"reason": ch.reason, "changed": list(ch.changed_names()), **remote_details(outcome)},
        )
        self.report.append(ChangeResult.of(ch, Status.DONE, said or "", done=done))
