"""Apply: carry out a Plan. The one place where effects happen.

Order of work, so that a process killed at any point leaves a database the next apply can
bring to the desired state:

1. Health checks first, before anything is written, concurrently, in dependency waves: a
   dependent is checked only after its dependencies passed; otherwise it is blocked.
2. Per organization, one transaction writes instances, connections, credentials, resources,
   health rows and audit entries, and bumps the state serial.
3. Deletions run afterwards, dependents first, once that organization's creates and updates
   succeeded.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from reconciler.audit import AuditWriter
from reconciler.core.catalog import Catalog, Provider
from reconciler.core.desired import Desired, DesiredConnection
from reconciler.core.plan import Action, Change, Plan
from reconciler.core.secret import Secret
from reconciler.core.state import Observed, ObservedInstance
from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.locking import lock_organization
from reconciler.db.observe import observe_in
from reconciler.db.schema import Connection, Credential, Health, Instance, Resource
from reconciler.health import (
    CheckRequest,
    CheckResult,
    RetryPolicy,
    TokenResult,
    base_url_for,
    exchange_refresh_token,
    run_checks,
)

log = logging.getLogger("reconciler.apply")


@dataclass
class ApplyOptions:
    actor: str
    method: str = "apply"
    git_commit: str | None = None
    parallelism: int = 10
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    environ: Mapping[str, str] = field(default_factory=dict)
    on_check: Callable[[CheckResult], None] | None = None
    on_start: Callable[[int], None] | None = None  # number of checks about to run
    lock_timeout: float = 30.0


@dataclass(frozen=True)
class Outcome:
    """What happened to one change: ``created``, ``updated``, ``deleted``, ``adopted``,
    ``orphaned``, ``failed``, ``blocked`` or ``skipped``."""

    address: str
    action: str
    result: str
    message: str = ""
    failure_type: str | None = None

    @property
    def failed(self) -> bool:
        return self.result in ("failed", "blocked")


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failed]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def health_row(instance_id: int, connection_id: int | None, r: CheckResult) -> Health:
    """The ``integration_health`` row of a check result."""
    return Health(
        instance_id=instance_id,
        connection_id=connection_id,
        status=r.status,
        failure_type=r.failure_type,
        message=r.message,
        response_ms=r.response_ms,
        provider_code=r.provider_code,
        attempts=r.attempts,
        checked_at=r.checked_at,
    )


def token_envelopes(
    keyring: KeyRing, organization: str, provider: str, user: str, tokens: TokenResult
) -> dict[str, str]:
    """OAuth2 tokens from a refresh-token grant, encrypted for their credential rows."""
    return {
        field: keyring.encrypt(
            secret.reveal(), CredentialAddress(organization, provider, user, field)
        )
        for field, secret in (
            ("access_token", tokens.access_token),
            ("refresh_token", tokens.refresh_token),
        )
    }


def _needs_check(change: Change, conn: DesiredConnection) -> bool:
    if change.kind != "connection" or not conn.active:
        return False
    if change.action in (Action.CREATE, Action.ADOPT):
        return True
    return change.action is Action.UPDATE and any(
        c == "owner" or c == "active" or c.startswith("credentials.") for c in change.changed
    )


def _uses_new_credentials(change: Change) -> bool:
    return change.action in (Action.CREATE, Action.ADOPT) or any(
        c == "owner" or c.startswith("credentials.") for c in change.changed
    )


class Applier:
    def __init__(
        self,
        engine: Engine,
        catalog: Catalog,
        desired: Desired,
        keyring: KeyRing,
        options: ApplyOptions,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.desired = desired
        self.keyring = keyring
        self.options = options
        self.report = ApplyReport()
        self.expiry: dict[str, datetime | None] = {}
        self._values: dict[str, dict[str, Secret]] = {}
        self.rejected: dict[str, str] = {}  # resource address -> why the provider refused it

    # -- desired lookups -------------------------------------------------------------------

    def _conn(self, change: Change) -> DesiredConnection | None:
        org = self.desired.organizations.get(change.organization)
        return org.connection(change.provider) if org else None

    # -- phase 1: checks -------------------------------------------------------------------

    def _stored_credentials(self, change: Change) -> dict[str, Secret]:
        """Decrypt the stored credentials of a connection (reactivation with an unchanged key)."""
        with Session(self.engine) as s:
            inst = s.scalar(
                select(Instance).where(
                    Instance.organization == change.organization,
                    Instance.provider == change.provider,
                )
            )
            if inst is None:
                return {}
            conn = s.scalar(
                select(Connection).where(
                    Connection.instance_id == inst.id, Connection.managed_by == "manifest"
                )
            )
            if conn is None:
                return {}
            out = {}
            for cr in s.scalars(select(Credential).where(Credential.connection_id == conn.id)):
                addr = CredentialAddress(
                    change.organization, change.provider, conn.user_email, cr.field
                )
                out[cr.field] = Secret(self.keyring.decrypt(cr.ciphertext, addr), cr.field)
            return out

    def _prepare(
        self, change: Change, conn: DesiredConnection
    ) -> tuple[dict[str, str], dict[str, Secret]]:
        """Encrypt the manifest's credentials and decrypt them again: the check uses exactly
        what will be stored."""
        if not _uses_new_credentials(change):
            return {}, self._stored_credentials(change)
        envelopes: dict[str, str] = {}
        values: dict[str, Secret] = {}
        for fname, secret in sorted(conn.credentials.items()):
            addr = CredentialAddress(conn.organization, conn.provider, conn.owner, fname)
            env = self.keyring.encrypt(secret.reveal(), addr)
            envelopes[fname] = env
            values[fname] = Secret(self.keyring.decrypt(env, addr), secret.source)
        return envelopes, values

    def run_checks(
        self, plan: Plan
    ) -> tuple[dict[str, CheckResult], dict[str, str], dict[str, dict[str, str]]]:
        """Check every new or changed credential, dependencies first.

        Returns results by address, blocked addresses (-> the dependency that failed) and the
        envelopes to store by address.
        """
        results: dict[str, CheckResult] = {}
        blocked: dict[str, str] = {}
        envelopes: dict[str, dict[str, str]] = {}
        todo: dict[str, tuple[Change, DesiredConnection]] = {}
        for ch in plan.changes:
            conn = self._conn(ch)
            if (
                ch.kind == "connection"
                and conn is not None
                and ch.action in (Action.CREATE, Action.UPDATE, Action.ADOPT)
            ):
                todo[ch.address] = (ch, conn)
        if self.options.on_start is not None:
            self.options.on_start(sum(1 for ch, conn in todo.values() if _needs_check(ch, conn)))
        for wave in self._waves(todo):
            requests = []
            for address in wave:
                ch, conn = todo[address]
                failed_dep = next(
                    (
                        d
                        for d in self.catalog.providers[ch.provider].depends_on
                        if f"{ch.organization}/{d}" in blocked
                        or (
                            f"{ch.organization}/{d}" in results
                            and results[f"{ch.organization}/{d}"].status != "healthy"
                        )
                    ),
                    None,
                )
                if failed_dep is not None:
                    blocked[address] = failed_dep
                    continue
                env, values = self._prepare(ch, conn)
                envelopes[address] = env
                self._values[address] = values
                if _needs_check(ch, conn):
                    provider = self.catalog.providers[ch.provider]
                    base, _ = base_url_for(provider, self.options.environ)
                    if provider.auth == "oauth2":
                        denied = self._exchange_tokens(address, provider, base, values, env)
                        if denied is not None:
                            results[address] = denied
                            if self.options.on_check:
                                self.options.on_check(denied)
                            continue
                    requests.append(CheckRequest(address, provider, values, base))
            for r in run_checks(
                requests,
                parallelism=self.options.parallelism,
                policy=self.options.policy,
                on_result=self.options.on_check,
            ):
                results[str(r.key)] = r
        return results, blocked, envelopes

    def _exchange_tokens(
        self,
        address: str,
        provider: Provider,
        base: str,
        values: dict[str, Secret],
        envelopes: dict[str, str],
    ) -> CheckResult | None:
        """OAuth2: trade the refresh token for an access token, which the check then uses.

        The tokens are stored encrypted (the access token with its expiry); a refused grant is
        the check's result (``oauth_denied``)."""
        got = exchange_refresh_token(
            provider,
            base,
            values["client_id"],
            values["client_secret"],
            values["refresh_token"],
            key=address,
            policy=self.options.policy,
        )
        if isinstance(got, CheckResult):
            return got
        org, prov = address.split("/", 1)
        conn = self.desired.organizations[org].connection(prov)
        assert conn is not None
        envelopes.update(token_envelopes(self.keyring, org, prov, conn.owner, got))
        values.update(access_token=got.access_token, refresh_token=got.refresh_token)
        self.expiry[address] = got.expires_at
        return None

    def verify_values(self, plan: Plan, results: Mapping[str, CheckResult]) -> dict[str, str]:
        """Ask the provider about resource values the catalog does not list (catalog
        ``verify``), e.g. a model id: only values the key can use are written."""
        asks: list[CheckRequest] = []
        labels: dict[str, tuple[str, str]] = {}
        for ch in plan.changes:
            if ch.kind != "resource" or ch.action not in (Action.CREATE, Action.UPDATE):
                continue
            parent = f"{ch.organization}/{ch.provider}"
            if parent in results and not results[parent].healthy:
                continue
            provider = self.catalog.providers[ch.provider]
            kind = provider.resource_kind(ch.resource_kind or "")
            if kind is None or ch.after is None:
                continue
            fields = [kind.value] if kind.value is not None else list(kind.fields)
            for f in fields:
                if f is None or f.verify is None:
                    continue
                value = ch.after.get("value" if kind.value is not None else f.name)
                if not isinstance(value, str) or value in (f.values or []):
                    continue
                values = self._values.get(parent) or self._stored_credentials(ch)
                if not values:
                    continue
                base, _ = base_url_for(provider, self.options.environ)
                request = provider.health_check.request.model_copy(
                    update={"path": f.verify.path.format(value=quote(value, safe="")), "query": {}}
                )
                probe = provider.model_copy(
                    update={
                        "health_check": provider.health_check.model_copy(
                            update={
                                "request": request,
                                "rules": [],
                                "identity": {},
                                "identity_from_key": {},
                            }
                        )
                    }
                )
                asks.append(CheckRequest(ch.address, probe, values, base))
                labels[ch.address] = (kind.name, value)
        rejected: dict[str, str] = {}
        for r in run_checks(asks, parallelism=self.options.parallelism, policy=self.options.policy):
            kind_name, value = labels[str(r.key)]
            if r.healthy:
                continue
            if r.http_status == 404:
                rejected[str(r.key)] = (
                    f"{kind_name} {value!r} is not in the catalog's list and the provider does "
                    "not list it for this key; use one of the catalog's values or one the key "
                    "can use"
                )
            else:
                rejected[str(r.key)] = f"could not verify {kind_name} {value!r}: {r.message}"
        return rejected

    def _waves(self, todo: Mapping[str, tuple[Change, DesiredConnection]]) -> list[list[str]]:
        depth: dict[str, int] = {}

        def d(address: str) -> int:
            if address in depth:
                return depth[address]
            ch, _ = todo[address]
            deps = [
                f"{ch.organization}/{x}" for x in self.catalog.providers[ch.provider].depends_on
            ]
            depth[address] = 1 + max((d(x) for x in deps if x in todo), default=-1)
            return depth[address]

        waves: dict[int, list[str]] = defaultdict(list)
        for a in sorted(todo):
            waves[d(a)].append(a)
        return [waves[k] for k in sorted(waves)]

    # -- phase 2 and 3: writes -------------------------------------------------------------

    def apply(self, plan: Plan, observed: Observed) -> ApplyReport:
        """Carry out ``plan``, computed from ``observed``. Each organization is written under
        its lock, and only if its state is still what the plan saw."""
        self.observed = observed
        results, blocked, envelopes = self.run_checks(plan)
        self.rejected = self.verify_values(plan, results)
        log.debug(
            "checks done: %d results, %d blocked, %d values refused",
            len(results),
            len(blocked),
            len(self.rejected),
        )
        by_org: dict[str, list[Change]] = defaultdict(list)
        for ch in plan.changes:
            by_org[ch.organization].append(ch)
        for org, changes in sorted(by_org.items()):
            self._apply_organization(org, changes, results, blocked, envelopes)
            log.debug("%s: done", org)
        for o in self.report.outcomes:
            log.debug("%s %s: %s", o.action, o.address, o.result)
        return self.report

    @property
    def holder(self) -> str:
        return f"{self.options.actor} on {socket.gethostname()} pid {os.getpid()}"

    def _begin_organization(self, s: Session, org: str, changes: list[Change]) -> bool:
        """Lock the organization, then check its state is still what the plan saw."""
        log.debug("%s: taking the organization's lock", org)
        lock_organization(s, org, timeout=self.options.lock_timeout, holder=self.holder)
        log.debug("%s: locked; re-reading its state", org)
        now = observe_in(s, [org])
        if _signature(now.of(org)) == _signature(self.observed.of(org)):
            return True
        for ch in changes:
            self.report.outcomes.append(
                Outcome(
                    ch.address,
                    ch.action.value,
                    "failed",
                    f"{org} changed in the database while this apply ran (another apply?); "
                    "nothing was written for it. Run plan and apply again.",
                )
            )
        return False

    def _writer(self, s: Session) -> AuditWriter:
        return AuditWriter(
            s, self.keyring, self.options.actor, self.options.method, self.options.git_commit
        )

    def _apply_organization(
        self,
        org: str,
        changes: list[Change],
        results: Mapping[str, CheckResult],
        blocked: Mapping[str, str],
        envelopes: Mapping[str, Mapping[str, str]],
    ) -> None:
        order = self.catalog.dependency_order({c.provider for c in changes})
        rank = {p: i for i, p in enumerate(order)}
        upserts = sorted(
            (
                c
                for c in changes
                if c.action not in (Action.DELETE, Action.ORPHAN)
                or (
                    c.kind == "resource"
                    and c.action is Action.DELETE
                    and c.reason_code != "parent_removed"
                )
            ),
            key=lambda c: (rank[c.provider], c.kind != "connection", c.address),
        )
        teardown = sorted(
            (c for c in changes if c not in upserts),
            key=lambda c: (-rank[c.provider], c.kind == "connection", c.address),
        )
        failed_here = False
        with Session(self.engine) as s, s.begin():
            if not self._begin_organization(s, org, changes):
                return
            w = self._writer(s)
            failed_connections: set[str] = set()
            for ch in upserts:
                if ch.kind == "connection":
                    ok = self._write_connection(s, w, ch, results, blocked, envelopes)
                    if not ok:
                        failed_connections.add(ch.address)
                        failed_here = True
                else:
                    parent = f"{ch.organization}/{ch.provider}"
                    if ch.address in self.rejected:
                        failed_here = True
                        self.report.outcomes.append(
                            Outcome(
                                ch.address, ch.action.value, "failed", self.rejected[ch.address]
                            )
                        )
                        continue
                    if parent in failed_connections:
                        self.report.outcomes.append(
                            Outcome(
                                ch.address,
                                ch.action.value,
                                "skipped",
                                f"not written: {parent} failed its health check",
                            )
                        )
                        continue
                    self._write_resource(s, w, ch)
        if not teardown:
            return
        if failed_here:
            for ch in teardown:
                self.report.outcomes.append(
                    Outcome(
                        ch.address,
                        ch.action.value,
                        "skipped",
                        "not torn down: a create or update of this organization failed",
                    )
                )
            return
        with Session(self.engine) as s, s.begin():
            lock_organization(s, org, timeout=self.options.lock_timeout, holder=self.holder)
            w = self._writer(s)
            for ch in teardown:
                if ch.kind == "connection":
                    self._teardown_connection(s, w, ch)
                else:
                    self._write_resource(s, w, ch)

    # -- connection writes -----------------------------------------------------------------

    def _instance(self, s: Session, ch: Change) -> Instance | None:
        return s.scalar(
            select(Instance).where(
                Instance.organization == ch.organization, Instance.provider == ch.provider
            )
        )

    def _write_connection(
        self,
        s: Session,
        w: AuditWriter,
        ch: Change,
        results: Mapping[str, CheckResult],
        blocked: Mapping[str, str],
        envelopes: Mapping[str, Mapping[str, str]],
    ) -> bool:
        conn = self._conn(ch)
        assert conn is not None
        provider = self.catalog.providers[ch.provider]
        now = datetime.now(UTC)
        if ch.address in blocked:
            dep = blocked[ch.address]
            msg = (
                f"blocked: {ch.organization}/{dep} did not connect, so {ch.address}, which "
                f"depends on it, was not connected"
            )
            w.record(ch.organization, "connection.blocked", ch.address, {"dependency": dep})
            self.report.outcomes.append(Outcome(ch.address, ch.action.value, "blocked", msg))
            return False
        inst = self._instance(s, ch)
        if inst is None:
            inst = Instance(
                organization=ch.organization,
                provider=ch.provider,
                status="error",
                managed_by="manifest",
                created_at=now,
                updated_at=now,
            )
            s.add(inst)
            s.flush()
        row = s.scalar(
            select(Connection).where(
                Connection.instance_id == inst.id, Connection.managed_by == "manifest"
            )
        )
        if ch.action is Action.ADOPT:
            inst.managed_by = "manifest"
            row = s.scalar(
                select(Connection).where(
                    Connection.instance_id == inst.id, Connection.user_email == conn.owner
                )
            )
            if row is not None:
                row.managed_by = "manifest"
        had_working = (
            row is not None and row.status == "connected" and self._has_credentials(s, row)
        )
        if row is None:
            row = Connection(
                instance_id=inst.id,
                user_email=conn.owner,
                status="error",
                managed_by="manifest",
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            s.flush()
        row.deletion_policy = conn.deletion_policy
        row.prevent_destroy = conn.prevent_destroy
        row.updated_at = now
        result = results.get(ch.address)
        rotating = had_working and any(c.startswith("credentials.") for c in ch.changed)
        if rotating and result is not None:
            # verify before swap: the new credential was checked while the old one kept
            # working; the attempt and its outcome are audited separately
            w.record(
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
            s.add(health_row(inst.id, row.id, result))
        new_creds = envelopes.get(ch.address) or {}
        verb = {Action.CREATE: "create", Action.UPDATE: "update", Action.ADOPT: "adopt"}[ch.action]
        if result is not None and result.status != "healthy":
            w.record(
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
            if not had_working:
                # a failed first connection keeps no credentials; its statuses say error
                s.execute(delete(Credential).where(Credential.connection_id == row.id))
                row.status = "error"
                inst.status = "error"
            self.report.outcomes.append(
                Outcome(ch.address, ch.action.value, "failed", result.message, result.failure_type)
            )
            return False
        if new_creds:
            if row.user_email != conn.owner:
                row.user_email = conn.owner
            self._store_credentials(
                s,
                row,
                conn,
                new_creds,
                replace_all=_uses_new_credentials(ch),
                expires_at=self.expiry.get(ch.address),
            )
        row.status = "connected"
        inst.status = "active" if conn.active else "inactive"
        inst.updated_at = now
        if result is not None:
            row.identity = json.dumps(dict(result.identity), sort_keys=True)
        details: dict[str, Any] = {"changed": list(ch.changed), "reason": ch.reason}
        if result is not None:
            details["health"] = result.message
            details["response_ms"] = result.response_ms
        w.record(ch.organization, f"connection.{verb}", ch.address, details)
        msg = (
            result.message
            if result is not None
            else (f"{provider.display_name} is inactive" if not conn.active else ch.reason)
        )
        self.report.outcomes.append(
            Outcome(ch.address, ch.action.value, f"{verb}d".replace("ed", "ed"), msg)
        )
        return True

    def _has_credentials(self, s: Session, row: Connection) -> bool:
        return (
            s.scalar(select(Credential.id).where(Credential.connection_id == row.id).limit(1))
            is not None
        )

    def _store_credentials(
        self,
        s: Session,
        row: Connection,
        conn: DesiredConnection,
        envelopes: Mapping[str, str],
        *,
        replace_all: bool,
        expires_at: datetime | None = None,
    ) -> None:
        """Store envelopes; the fingerprint is of the value the manifest named (so a provider
        that rotates a refresh token does not make the plan see a change)."""
        if replace_all:
            s.execute(delete(Credential).where(Credential.connection_id == row.id))
        else:
            s.execute(
                delete(Credential).where(
                    Credential.connection_id == row.id, Credential.field.in_(sorted(envelopes))
                )
            )
        s.flush()
        for fname, env in sorted(envelopes.items()):
            addr = CredentialAddress(conn.organization, conn.provider, conn.owner, fname)
            named = conn.credentials.get(fname)
            value = named.reveal() if named is not None else self.keyring.decrypt(env, addr)
            s.add(
                Credential(
                    connection_id=row.id,
                    field=fname,
                    ciphertext=env,
                    key_id=self.keyring.key_id_of(env),
                    fingerprint=self.keyring.fingerprint(value, addr),
                    fingerprint_key_id=self.keyring.primary_id,
                    expires_at=expires_at if fname == "access_token" else None,
                )
            )

    def _teardown_connection(self, s: Session, w: AuditWriter, ch: Change) -> None:
        inst = self._instance(s, ch)
        if inst is None:
            self.report.outcomes.append(
                Outcome(ch.address, ch.action.value, "skipped", "already gone")
            )
            return
        row = s.scalar(
            select(Connection).where(
                Connection.instance_id == inst.id, Connection.managed_by == "manifest"
            )
        )
        if ch.action is Action.ORPHAN:
            if row is not None:
                row.managed_by = "orphaned"
            others = s.scalar(
                select(Connection.id).where(
                    Connection.instance_id == inst.id, Connection.managed_by == "manifest"
                )
            )
            if others is None:
                inst.managed_by = "orphaned"
                for r in s.scalars(select(Resource).where(Resource.instance_id == inst.id)):
                    r.managed_by = "orphaned"
            w.record(ch.organization, "connection.orphan", ch.address, {"reason": ch.reason})
            self.report.outcomes.append(Outcome(ch.address, "orphan", "orphaned", ch.reason))
            return
        if row is not None:
            s.execute(delete(Credential).where(Credential.connection_id == row.id))
            s.execute(delete(Health).where(Health.connection_id == row.id))
            s.delete(row)
            s.flush()
        remaining = s.scalar(select(Connection.id).where(Connection.instance_id == inst.id))
        if remaining is None:
            s.execute(delete(Resource).where(Resource.instance_id == inst.id))
            s.execute(delete(Health).where(Health.instance_id == inst.id))
            s.delete(inst)
        w.record(ch.organization, "connection.delete", ch.address, {"reason": ch.reason})
        self.report.outcomes.append(Outcome(ch.address, "delete", "deleted", ch.reason))

    # -- resources -------------------------------------------------------------------------

    def _write_resource(self, s: Session, w: AuditWriter, ch: Change) -> None:
        inst = self._instance(s, ch)
        assert ch.resource_kind is not None and ch.identity is not None
        existing = (
            None
            if inst is None
            else s.scalar(
                select(Resource).where(
                    Resource.instance_id == inst.id,
                    Resource.kind == ch.resource_kind,
                    Resource.identity == ch.identity,
                )
            )
        )
        now = datetime.now(UTC)
        if ch.action is Action.DELETE:
            if existing is not None:
                s.delete(existing)
            w.record(ch.organization, "resource.delete", ch.address, {"reason": ch.reason})
            self.report.outcomes.append(Outcome(ch.address, "delete", "deleted", ch.reason))
            return
        assert inst is not None and ch.after is not None
        is_default = bool(ch.after.get("default", False))
        spec = dict(ch.after)  # stored as shown, "default" included where the kind has one
        if existing is None:
            s.add(
                Resource(
                    instance_id=inst.id,
                    kind=ch.resource_kind,
                    identity=ch.identity,
                    spec=json.dumps(spec, sort_keys=True),
                    is_default=is_default,
                    managed_by="manifest",
                    created_at=now,
                    updated_at=now,
                )
            )
            verb = "create"
        else:
            existing.spec = json.dumps(spec, sort_keys=True)
            existing.is_default = is_default
            existing.managed_by = "manifest"
            existing.updated_at = now
            verb = "update"
        w.record(
            ch.organization,
            f"resource.{verb}",
            ch.address,
            {"reason": ch.reason, "changed": list(ch.changed)},
        )
        self.report.outcomes.append(Outcome(ch.address, ch.action.value, f"{verb}d", ch.reason))


def _signature(instances: list[ObservedInstance]) -> list[tuple[object, ...]]:
    """What a plan depends on in an organization's state (health history excluded)."""
    return [
        (
            i.provider,
            i.managed_by,
            i.status == "inactive",
            tuple(
                (
                    c.user_email,
                    c.managed_by,
                    c.deletion_policy,
                    c.prevent_destroy,
                    tuple(sorted((f, x.fingerprint, x.key_id) for f, x in c.credentials.items())),
                )
                for c in i.connections
            ),
            tuple(
                (
                    r.kind,
                    r.identity,
                    tuple(sorted(r.spec.items(), key=str)),
                    r.is_default,
                    r.managed_by,
                )
                for r in i.resources
            ),
        )
        for i in instances
    ]
