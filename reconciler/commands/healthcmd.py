"""reconciler health: re-check existing connections, record results and status transitions.

OAuth2 connections whose access token has expired (or is about to) are refreshed first, with
the stored refresh token; a refused grant is the check's result (``oauth_denied``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from reconciler.apply import health_values, token_envelopes
from reconciler.audit import AuditWriter
from reconciler.commands.auditcmd import _session
from reconciler.commands.inputs import Selection, keyring, policy_from_env
from reconciler.core.catalog import load_catalog
from reconciler.core.secret import Secret
from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.bulk import insert_rows, table_of
from reconciler.db.credentials import StoredCredential, decrypt, stored_credentials
from reconciler.db.locking import lock_organizations
from reconciler.db.observe import observe_in
from reconciler.db.schema import Connection, Credential, Health, Instance
from reconciler.health import (
    CheckRequest,
    CheckResult,
    RetryPolicy,
    base_url_for,
    exchange_refresh_token,
    run_checks,
)
from reconciler.incidents import CheckOutcome, NotifySettings, record_checks

log = logging.getLogger("reconciler.commands.health")

REFRESH_MARGIN = timedelta(seconds=30)
HEALTH_LOCK_TIMEOUT = 30.0  # seconds to wait for an apply of the same organization


@dataclass(frozen=True)
class Target:
    instance_id: int
    connection_id: int
    address: str
    user: str


@dataclass
class TokenUpdate:
    envelopes: dict[str, str] = field(default_factory=dict)
    expires_at: datetime | None = None


def run_health(
    catalog_dir: str | None,
    environ: Mapping[str, str],
    selection: Selection,
    *,
    providers: Sequence[str] = (),
    actor: str,
    parallelism: int = 10,
    on_check: Callable[[CheckResult], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    order: list[tuple[int, str, str, str]] | None = None,
    write_turn: Callable[[], AbstractContextManager[object]] | None = None,
) -> list[dict[str, Any]]:
    """Check every connection that has credentials and whose instance is not inactive.

    ``order``, if given, receives each result's place in the output of one process checking
    everything (refused OAuth refreshes first, then by organization, provider and user), so
    the results of several workers (``--workers``) merge into the same order; ``write_turn``
    is taken around the recording (workers sharing a SQLite file take turns)."""
    catalog = load_catalog(catalog_dir)
    ring = keyring(environ)
    policy = policy_from_env(environ)
    requests: list[CheckRequest] = []
    early: list[CheckResult] = []
    tokens: dict[int, TokenUpdate] = {}
    with _session(environ) as s:
        state = observe_in(s)
        rows = [
            (inst, conn)
            for _, inst in sorted(state.instances.items())
            if inst.status != "inactive"
            for conn in sorted(inst.connections, key=lambda c: c.user_email)
        ]
        creds: dict[int, list[StoredCredential]] = {}
        for c in stored_credentials(s):
            creds.setdefault(c.connection_id, []).append(c)
        for inst, conn in rows:
            if not selection.admits(inst.organization):
                continue
            if providers and inst.provider not in providers:
                continue
            provider = catalog.providers.get(inst.provider)
            if provider is None or conn.id not in creds:
                continue
            target = Target(
                inst.id, conn.id, f"{inst.organization}/{inst.provider}", conn.user_email
            )
            values = decrypt(ring, creds[conn.id])
            base, _ = base_url_for(provider, environ)
            if provider.auth == "oauth2":
                expiry = {c.field: c.expires_at for c in creds[conn.id]}
                denied = _refresh_if_expired(
                    provider, base, target, values, expiry, ring, policy, tokens, inst.organization
                )
                if denied is not None:
                    early.append(denied)
                    if on_check:
                        on_check(denied)
                    continue
            requests.append(CheckRequest(target, provider, values, base))
    if on_start is not None:
        on_start(len(requests) + len(early))
    results = early + run_checks(
        requests, parallelism=parallelism, policy=policy, on_result=on_check
    )
    with write_turn() if write_turn is not None else nullcontext():
        return _record(environ, ring, actor, results, tokens, order, len(early))


def _refresh_if_expired(
    provider: Any,
    base: str,
    target: Target,
    values: dict[str, Secret],
    expiry: Mapping[str, datetime | None],
    ring: KeyRing,
    policy: RetryPolicy,
    tokens: dict[int, TokenUpdate],
    organization: str,
) -> CheckResult | None:
    expires = expiry.get("access_token")
    fresh = "access_token" in values and (
        expires is None or expires > datetime.now(UTC) + REFRESH_MARGIN
    )
    if fresh:
        return None
    got = exchange_refresh_token(
        provider,
        base,
        values["client_id"],
        values["client_secret"],
        values["refresh_token"],
        key=target,
        policy=policy,
    )
    if isinstance(got, CheckResult):
        return got
    update = TokenUpdate(
        envelopes=token_envelopes(ring, organization, provider.name, target.user, got),
        expires_at=got.expires_at,
    )
    values.update(access_token=got.access_token, refresh_token=got.refresh_token)
    tokens[target.connection_id] = update
    return None


M = TypeVar("M", Instance, Connection)
CHUNK = 500  # ids named in one query


def _rows(s: Session, model: type[M], ids: set[int]) -> dict[int, M]:
    """The rows of ``ids`` (id -> row), read a chunk of ids per query, not one per check."""
    out: dict[int, M] = {}
    wanted = sorted(ids)
    for i in range(0, len(wanted), CHUNK):
        for row in s.scalars(select(model).where(model.id.in_(wanted[i : i + CHUNK]))):
            out[row.id] = row
    return out


def _record(
    environ: Mapping[str, str],
    ring: KeyRing,
    actor: str,
    results: list[CheckResult],
    tokens: Mapping[int, TokenUpdate],
    order: list[tuple[int, str, str, str]] | None = None,
    early: int = 0,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not results:
        return out
    checks: list[CheckOutcome] = []
    with _session(environ) as s, s.begin():
        # the organizations' locks, as an apply takes them: token refreshes and status
        # changes never interleave with an apply's writes of the same rows
        orgs = {r.key.address.split("/", 1)[0] for r in results if isinstance(r.key, Target)}
        asked = time.monotonic()
        lock_organizations(s, orgs, timeout=HEALTH_LOCK_TIMEOUT, holder=f"health by {actor}")
        locked = time.monotonic()
        w = AuditWriter(s, ring, actor, "health")
        targets = [r.key for r in results if isinstance(r.key, Target)]
        instances = _rows(s, Instance, {t.instance_id for t in targets})
        connections = _rows(s, Connection, {t.connection_id for t in targets})
        rows: list[dict[str, Any]] = []
        for i, r in enumerate(results):
            t = r.key
            assert isinstance(t, Target)
            inst = instances.get(t.instance_id)
            conn = connections.get(t.connection_id)
            if inst is None or conn is None:
                continue
            if t.connection_id in tokens:
                _store_tokens(s, w, ring, inst, conn, tokens[t.connection_id])
            rows.append(health_values(t.instance_id, t.connection_id, r))
            _transition(w, inst, conn, r, t.address)
            checks.append(
                CheckOutcome(
                    inst.organization,
                    inst.provider,
                    r.healthy,
                    r.failure_type,
                    r.message,
                    r.checked_at,
                )
            )
            out.append(
                {
                    "address": t.address,
                    "user": t.user,
                    "status": r.status,
                    "failure_type": r.failure_type,
                    "message": r.message,
                    "response_ms": r.response_ms,
                    "provider_code": r.provider_code,
                    "checked_at": r.checked_at.isoformat(timespec="seconds"),
                }
            )
            if order is not None:
                order.append((int(i >= early), inst.organization, inst.provider, t.user))
        insert_rows(s, table_of(Health), rows)
        # in the transaction of the health rows: incidents and their events commit with them
        changes = record_checks(s, checks, NotifySettings.from_environ(environ))
    log.debug(
        "recorded %d result(s) of %d organization(s): waited %.3f s for their locks, "
        "held them %.3f s",
        len(out),
        len(orgs),
        locked - asked,
        time.monotonic() - locked,
    )
    for c in changes:
        for row in out:
            if row["address"] == f"{c.organization}/{c.provider}":
                row.setdefault("incidents", []).append(
                    {"change": c.kind, "id": c.incident_uid, "failure_type": c.failure_type}
                )
                break
    return out


def _store_tokens(
    s: Session,
    w: AuditWriter,
    ring: KeyRing,
    inst: Instance,
    conn: Connection,
    update: TokenUpdate,
) -> None:
    """Replace the stored tokens; the refresh token keeps the fingerprint of the manifest's
    value, so a plan does not see a change the manifest did not make."""
    for fname, env in update.envelopes.items():
        row = s.scalar(
            select(Credential).where(Credential.connection_id == conn.id, Credential.field == fname)
        )
        addr = CredentialAddress(inst.organization, inst.provider, conn.user_email, fname)
        if row is None:
            row = Credential(
                connection_id=conn.id,
                field=fname,
                ciphertext=env,
                key_id=ring.key_id_of(env),
                fingerprint="",
                fingerprint_key_id="",
            )
            s.add(row)
        row.ciphertext = env
        row.key_id = ring.key_id_of(env)
        if fname == "access_token":
            row.fingerprint = ring.fingerprint(ring.decrypt(env, addr), addr)
            row.fingerprint_key_id = ring.primary_id
            row.expires_at = update.expires_at
    w.record(
        inst.organization,
        "credential.refresh",
        f"{inst.organization}/{inst.provider}",
        {
            "fields": sorted(update.envelopes),
            "expires_at": update.expires_at.isoformat() if update.expires_at else None,
        },
    )


def _transition(
    w: AuditWriter, inst: Instance, conn: Connection, r: CheckResult, address: str
) -> None:
    """Move statuses with the result, auditing every transition."""
    new_conn = "connected" if r.status == "healthy" else "error"
    now = datetime.now(UTC)
    if conn.status != new_conn:
        w.record(
            inst.organization,
            "connection.status",
            f"{address}/{conn.user_email}",
            {
                "from": conn.status,
                "to": new_conn,
                "message": r.message,
                "failure_type": r.failure_type,
            },
        )
        conn.status = new_conn
        conn.updated_at = now
    new_inst = "active" if r.status == "healthy" else "error"
    if inst.status != new_inst:
        w.record(
            inst.organization, "instance.status", address, {"from": inst.status, "to": new_inst}
        )
        inst.status = new_inst
        inst.updated_at = now


def budget_alerts(
    catalog_dir: str | None,
    environ: Mapping[str, str],
    selection: Selection,
    results: list[dict[str, Any]],
) -> list[str]:
    """Anthropic's month-to-date cost (with an ``admin_key``; SPEC section 8): added to the
    connection's result as ``usage``, and a line for each over its ``alert_at_percent``."""
    from reconciler.commands.inputs import open_database
    from reconciler.commands.provider_status import budget_usage

    engine, observed = open_database(environ)
    usage = budget_usage(
        load_catalog(catalog_dir),
        observed,
        engine,
        lambda: keyring(environ),
        environ,
        selection.admits,
    )
    for r in results:
        if r.get("address") in usage:
            r["usage"] = usage[r["address"]]
    return [
        f"Budget alert: {address}: {u['message']}"
        for address, u in sorted(usage.items())
        if u.get("alert")
    ]
