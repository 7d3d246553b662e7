"""reconciler health: re-check existing connections, record results and status transitions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reconciler.audit import AuditWriter
from reconciler.commands.auditcmd import _session
from reconciler.commands.inputs import Selection, keyring, policy_from_env
from reconciler.core.catalog import load_catalog
from reconciler.core.secret import Secret
from reconciler.crypto import CredentialAddress
from reconciler.db.schema import Connection, Credential, Health, Instance
from reconciler.health import CheckRequest, CheckResult, base_url_for, run_checks


def run_health(
    catalog_dir: str | None,
    environ: Mapping[str, str],
    selection: Selection,
    *,
    providers: Sequence[str] = (),
    actor: str,
    parallelism: int = 10,
    on_check: Callable[[CheckResult], None] | None = None,
) -> list[dict[str, Any]]:
    """Check every connection that has credentials and whose instance is not inactive."""
    catalog = load_catalog(catalog_dir)
    ring = keyring(environ)
    requests: list[CheckRequest] = []
    with _session(environ) as s:
        rows = s.execute(
            select(Instance, Connection)
            .join(Connection, Connection.instance_id == Instance.id)
            .where(Instance.status != "inactive")
            .order_by(Instance.organization, Instance.provider, Connection.user_email)
        ).all()
        creds: dict[int, list[Credential]] = {}
        for c in s.scalars(select(Credential)):
            creds.setdefault(c.connection_id, []).append(c)
        for inst, conn in rows:
            if not selection.admits(inst.organization) or (
                providers and inst.provider not in providers
            ):
                continue
            provider = catalog.providers.get(inst.provider)
            if provider is None or conn.id not in creds:
                continue
            values = {
                c.field: Secret(
                    ring.decrypt(
                        c.ciphertext,
                        CredentialAddress(
                            inst.organization, inst.provider, conn.user_email, c.field
                        ),
                    ),
                    c.field,
                )
                for c in creds[conn.id]
            }
            base, _ = base_url_for(provider, environ)
            requests.append(
                CheckRequest(
                    (inst.id, conn.id, f"{inst.organization}/{inst.provider}", conn.user_email),
                    provider,
                    values,
                    base,
                )
            )
    results = run_checks(
        requests, parallelism=parallelism, policy=policy_from_env(environ), on_result=on_check
    )
    return _record(environ, ring, actor, results)


def _record(
    environ: Mapping[str, str], ring: Any, actor: str, results: list[CheckResult]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not results:
        return out
    with _session(environ) as s, s.begin():
        w = AuditWriter(s, ring, actor, "health")
        for r in results:
            inst_id, conn_id, address, user = r.key  # type: ignore[misc]
            inst = s.get(Instance, inst_id)
            conn = s.get(Connection, conn_id)
            if inst is None or conn is None:
                continue
            s.add(
                Health(
                    instance_id=inst_id,
                    connection_id=conn_id,
                    status=r.status,
                    failure_type=r.failure_type,
                    message=r.message,
                    response_ms=r.response_ms,
                    provider_code=r.provider_code,
                    attempts=r.attempts,
                    checked_at=r.checked_at,
                )
            )
            _transition(s, w, inst, conn, r, address)
            out.append(
                {
                    "address": address,
                    "user": user,
                    "status": r.status,
                    "failure_type": r.failure_type,
                    "message": r.message,
                    "response_ms": r.response_ms,
                    "provider_code": r.provider_code,
                    "checked_at": r.checked_at.isoformat(timespec="seconds"),
                }
            )
    return out


def _transition(
    s: Session, w: AuditWriter, inst: Instance, conn: Connection, r: CheckResult, address: str
) -> None:
    new_conn = "connected" if r.status == "healthy" else "error"
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
        conn.updated_at = datetime.now(UTC)
    if conn.managed_by == "manifest" or inst.status != "inactive":
        new_inst = "active" if r.status == "healthy" else "error"
        if inst.status != new_inst:
            w.record(
                inst.organization, "instance.status", address, {"from": inst.status, "to": new_inst}
            )
            inst.status = new_inst
            inst.updated_at = datetime.now(UTC)
