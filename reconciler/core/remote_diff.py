"""The diff of provider-side resources: declared x remembered x held at the provider -> typed
changes (``reconciler.core.remote`` has the records and explains ownership). Pure.

Comparison is set arithmetic on identities, then field by field on the kind's compared fields
(``remote.compare`` in the catalog); a difference in a field the API can update
(``remote.update``) is an update in place, any other a replace (delete and create).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.catalog import RemoteSpec, ResourceKind
from reconciler.core.desired import DesiredResource
from reconciler.core.remote import (
    ChangeSource,
    RemoteAction,
    RemoteChange,
    RemoteConflict,
    RemoteDiff,
    RemoteObject,
    StoredRemote,
    declared_fields,
    differing,
    identity_key,
    resource_address,
    secret_variable,
)


def diff_remote(
    *,
    connection: str,
    provider: str,
    kind: ResourceKind,
    desired: Iterable[DesiredResource],
    stored: Iterable[StoredRemote],
    remote: Iterable[RemoteObject] | None,
) -> RemoteDiff:
    """The changes that make the provider hold what is declared. Pure.

    ``remote`` None compares with our tables only (``plan --refresh=false``).
    """
    if kind.remote is None or kind.remote.existence_only:
        return RemoteDiff()
    ctx = _Context(connection, provider, kind, kind.remote)
    wanted = {identity_key(kind, d.identity): d for d in desired if d.kind == kind.name}
    rows = {identity_key(kind, s.identity): s for s in stored if s.kind == kind.name}
    if remote is None:
        return ctx.without_refresh(wanted, rows)
    return ctx.with_refresh(wanted, rows, [o for o in remote if o.kind == kind.name])


@dataclass
class _Context:
    connection: str
    provider: str
    kind: ResourceKind
    remote: RemoteSpec
    changes: list[RemoteChange] = field(default_factory=list)
    conflicts: list[RemoteConflict] = field(default_factory=list)

    def address(self, identity: str) -> str:
        return resource_address(self.connection, self.kind.name, identity)

    def done(self) -> RemoteDiff:
        order = sorted(self.changes, key=lambda c: (c.action != RemoteAction.DELETE, c.identity))
        return RemoteDiff(tuple(order), tuple(sorted(self.conflicts, key=lambda c: c.address)))

    def change(self, action: RemoteAction, identity: str, reason: str, **kw: Any) -> None:
        self.changes.append(
            RemoteChange(
                action,
                self.provider,
                self.kind.name,
                identity,
                self.address(identity),
                reason,
                **kw,
            )
        )

    # -- comparing with our tables only ----------------------------------------------------------

    def without_refresh(
        self, wanted: dict[str, DesiredResource], rows: dict[str, StoredRemote]
    ) -> RemoteDiff:
        for key, d in wanted.items():
            row = rows.get(key)
            after = declared_fields(self.kind, d.spec)
            if row is None and d.spec.get("adopt") is True:
                self.change(
                    RemoteAction.ADOPT,
                    d.identity,
                    "adopt: true takes over the object with this identity at the provider "
                    "(found when apply reads the provider)",
                    after=after,
                    secret_variable=secret_variable(d.spec),
                )
            elif row is None or row.remote_id is None:
                self.create(d, row, gone=None)
            else:
                self.compare(d, row, row.remote_id, row.fields, ChangeSource.MANIFEST)
        for key, row in rows.items():
            if key not in wanted:
                self.change(
                    RemoteAction.DELETE,
                    row.identity,
                    "no longer in the manifest",
                    remote_id=row.remote_id,
                    before=dict(row.fields),
                )
        return self.done()

    # -- comparing with what the provider answered -----------------------------------------------

    def with_refresh(
        self,
        wanted: dict[str, DesiredResource],
        rows: dict[str, StoredRemote],
        objects: list[RemoteObject],
    ) -> RemoteDiff:
        ours, foreign = self.split(rows, objects)
        for key, d in wanted.items():
            row = rows.get(key)
            mine = ours.pop(key, [])
            keep = self.keep_one(row, mine)
            others = foreign.get(key, [])
            adopting = d.spec.get("adopt") is True
            if keep is not None:
                self.ours_declared(d, row, keep)
            elif row is not None and row.remote_id is not None:  # ours, gone at the provider
                if others and adopting:
                    self.adopt(d, None, others)
                elif others:
                    self.conflict(d, others)
                else:
                    self.create(d, row, gone=row.remote_id)
            elif adopting or row is not None:  # row: a create that was never recorded
                self.adopt(d, row, others)
            elif others:
                self.conflict(d, others)
            else:
                self.create(d, None, gone=None)
        for key, row in rows.items():
            if key not in wanted and not ours.get(key):
                self.change(
                    RemoteAction.DELETE,
                    row.identity,
                    "no longer in the manifest, and already gone at the provider: only forgotten",
                    source=ChangeSource.BOTH,
                    before=dict(row.fields),
                )
        for key, extra in sorted(ours.items()):
            for obj in extra:
                self.change(
                    RemoteAction.DELETE,
                    obj.identity if key not in rows else rows[key].identity,
                    "no longer in the manifest",
                    remote_id=obj.remote_id,
                    before=dict(obj.fields),
                )
        return self.done()

    def split(
        self, rows: dict[str, StoredRemote], objects: list[RemoteObject]
    ) -> tuple[dict[str, list[RemoteObject]], dict[str, list[RemoteObject]]]:
        """Objects that are ours, by the resource they belong to, and the others by identity."""
        by_id = {r.remote_id: key for key, r in rows.items() if r.remote_id}
        prefix = resource_address(self.connection, self.kind.name, "")
        ours: dict[str, list[RemoteObject]] = {}
        foreign: dict[str, list[RemoteObject]] = {}
        for obj in sorted(objects, key=lambda o: o.remote_id):
            if obj.remote_id in by_id:
                ours.setdefault(by_id[obj.remote_id], []).append(obj)
            elif obj.marker is not None and obj.marker.startswith(prefix):
                ours.setdefault(identity_key(self.kind, obj.marker[len(prefix) :]), []).append(obj)
            else:
                foreign.setdefault(identity_key(self.kind, obj.identity), []).append(obj)
        return ours, foreign

    def keep_one(self, row: StoredRemote | None, mine: list[RemoteObject]) -> RemoteObject | None:
        """The object of ours that stays for a declared resource; the others are deleted."""
        if not mine:
            return None
        known = [o for o in mine if row is not None and o.remote_id == row.remote_id]
        keep = known[0] if known else mine[0]
        for extra in mine:
            if extra is not keep:
                self.change(
                    RemoteAction.DELETE,
                    keep.identity if row is None else row.identity,
                    "a second object of ours for this resource at the provider "
                    f"({extra.remote_id})",
                    source=ChangeSource.PROVIDER,
                    remote_id=extra.remote_id,
                    before=dict(extra.fields),
                )
        return keep

    def ours_declared(
        self, d: DesiredResource, row: StoredRemote | None, obj: RemoteObject
    ) -> None:
        if row is not None and row.remote_id == obj.remote_id:
            self.compare(d, row, obj.remote_id, obj.fields, None)
            return
        # Marked as ours but not in our tables: an apply stopped between the provider's answer
        # and its commit. The signing secret of that answer was never stored.
        after = declared_fields(self.kind, d.spec)
        if row is not None and row.remote_id is not None and self.remote.signing_secret:
            # our tables name another object (gone at the provider): which create made this
            # one, and so its Idempotency-Key and signing secret, is not known (a key that
            # went to another account and back, or a re-create whose answer was lost)
            self.replace(
                d,
                obj,
                f"marked as ours but not the object our tables name ({row.remote_id}, gone); "
                "its signing secret is not known",
                row=row,
            )
            return
        if self.remote.idempotency_key and not differing(self.kind, after, obj.fields):
            gone = row.remote_id if row is not None else None
            self.create(
                d,
                row,
                gone=gone,
                reason=f"made by an interrupted apply ({obj.remote_id}); the same create is "
                "sent again and the provider replays its answer, signing secret included",
            )
        elif self.remote.signing_secret:
            self.replace(d, obj, "made by an interrupted apply whose signing secret was lost")
        else:
            self.adopt_object(d, obj, "made by an interrupted apply; recorded as ours")

    def compare(
        self,
        d: DesiredResource,
        row: StoredRemote,
        remote_id: str,
        held: Mapping[str, Any],
        source: ChangeSource | None,
    ) -> None:
        after = declared_fields(self.kind, d.spec)
        changed = differing(self.kind, after, held)
        if not changed:
            return
        if source is None:
            in_manifest = bool(differing(self.kind, after, row.fields))
            at_provider = bool(differing(self.kind, held, row.fields))
            source = (
                ChangeSource.BOTH
                if in_manifest and at_provider
                else ChangeSource.PROVIDER
                if at_provider
                else ChangeSource.MANIFEST
            )
        where = "at the provider" if source is ChangeSource.PROVIDER else "in the manifest"
        if source is ChangeSource.BOTH:
            where = "in the manifest and at the provider"
        what = f"changed {where}: {', '.join(changed)}"
        if set(changed) <= set(self.remote.update):
            self.change(
                RemoteAction.UPDATE,
                d.identity,
                what + " (updated in place)",
                source=source,
                remote_id=remote_id,
                before=dict(held),
                after=after,
                changed=changed,
            )
            return
        self.replace(d, None, what, remote_id=remote_id, before=held, row=row, source=source)

    def replace(
        self,
        d: DesiredResource,
        obj: RemoteObject | None,
        why: str,
        *,
        remote_id: str | None = None,
        before: Mapping[str, Any] | None = None,
        row: StoredRemote | None = None,
        source: ChangeSource = ChangeSource.PROVIDER,
    ) -> None:
        rid = remote_id or (obj.remote_id if obj else None)
        held = before if before is not None else (obj.fields if obj else {})
        after = declared_fields(self.kind, d.spec)
        secret = " and a new signing secret will be issued" if self.remote.signing_secret else ""
        self.change(
            RemoteAction.REPLACE,
            d.identity,
            f"{why}; the provider cannot change it in place: deleted and re-created{secret}",
            source=source,
            remote_id=rid,
            before=dict(held),
            after=after,
            changed=differing(self.kind, after, held),
            generation=(row.generation + 1) if row is not None else 0,
            replaces=rid,
            issues_secret=self.remote.signing_secret,
        )

    def create(
        self,
        d: DesiredResource,
        row: StoredRemote | None,
        *,
        gone: str | None,
        reason: str | None = None,
    ) -> None:
        secret = self.remote.signing_secret
        if row is not None and row.remote_id is None:
            generation, replaces = row.generation, row.replaces
            why = reason or "completing an interrupted create"
            source = ChangeSource.MANIFEST
        elif gone is not None and row is not None:
            generation, replaces = row.generation + 1, gone
            why = reason or (
                f"deleted at the provider (was {gone}); re-created"
                + (", and a new signing secret will be issued" if secret else "")
            )
            source = ChangeSource.PROVIDER
        else:
            generation, replaces = 0, None
            why = reason or (
                "declared in the manifest"
                + ("; the provider issues its signing secret" if secret else "")
            )
            source = ChangeSource.MANIFEST
        self.change(
            RemoteAction.CREATE,
            d.identity,
            why,
            source=source,
            after=declared_fields(self.kind, d.spec),
            generation=generation,
            replaces=replaces,
            issues_secret=secret,
        )

    def adopt(
        self, d: DesiredResource, row: StoredRemote | None, found: list[RemoteObject]
    ) -> None:
        interrupted = row is not None and row.remote_id is None and d.spec.get("adopt") is not True
        if not found:
            self.create(d, row, gone=None)
            return
        if len(found) > 1:
            ids = ", ".join(o.remote_id for o in found)
            self.conflicts.append(
                RemoteConflict(
                    self.address(d.identity),
                    None,
                    f"{len(found)} objects at {self.provider} have this identity ({ids}); "
                    "adopting needs exactly one: remove the others at the provider",
                )
            )
            return
        obj = found[0]
        if interrupted:
            if self.remote.signing_secret:
                self.replace(d, obj, "made by an interrupted apply whose signing secret was lost")
            else:
                self.adopt_object(d, obj, "made by an interrupted apply; recorded as ours")
            return
        after = declared_fields(self.kind, d.spec)
        fixed = [n for n in differing(self.kind, after, obj.fields) if n not in self.remote.update]
        if fixed:
            self.conflicts.append(
                RemoteConflict(
                    self.address(d.identity),
                    obj.remote_id,
                    f"cannot adopt {obj.remote_id}: its {', '.join(fixed)} differ(s) from the "
                    f"manifest and {self.provider} cannot change that in place (re-creating it "
                    "would change its signing secret); make them match first",
                )
            )
            return
        self.adopt_object(
            d,
            obj,
            "adopt: true takes over the object made outside the reconciler, keeping its "
            "signing secret",
        )

    def adopt_object(self, d: DesiredResource, obj: RemoteObject, why: str) -> None:
        after = declared_fields(self.kind, d.spec)
        changed = differing(self.kind, after, obj.fields)
        self.change(
            RemoteAction.ADOPT,
            d.identity,
            why + (f"; then updated in place: {', '.join(changed)}" if changed else ""),
            source=ChangeSource.PROVIDER,
            remote_id=obj.remote_id,
            before=dict(obj.fields),
            after=after,
            changed=changed,
            secret_variable=secret_variable(d.spec),
        )

    def conflict(self, d: DesiredResource, found: list[RemoteObject]) -> None:
        ids = ", ".join(o.remote_id for o in found)
        self.conflicts.append(
            RemoteConflict(
                self.address(d.identity),
                found[0].remote_id,
                f"{self.kind.name} {ids} at {self.provider} has the identity {d.identity} and "
                "was not created by the reconciler: it is never changed or deleted. Set "
                "adopt: true on the entry to manage it (its signing secret is kept), or remove "
                "it at the provider",
            )
        )
