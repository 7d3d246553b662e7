"""audit, audit verify, audit head."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reconciler.audit import verify
from reconciler.commands.inputs import keyring
from reconciler.core.errors import ConfigError, InputError, ReconcilerError
from reconciler.db.engine import database_exists, database_url, has_schema, make_engine
from reconciler.db.schema import AuditEntry


def _session(environ: Mapping[str, str]) -> Session:
    url = database_url(environ)
    if not database_exists(url):
        raise ConfigError("the database does not exist yet; run `reconciler apply` first")
    engine = make_engine(url)
    if not has_schema(engine):
        raise ConfigError("the database has no schema yet; run `reconciler db upgrade`")
    return Session(engine)


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--since {value!r} is not an ISO date or time, e.g. 2026-11-01") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _row(e: AuditEntry) -> dict[str, Any]:
    created = e.created_at
    return {
        "seq": e.seq,
        "organization": e.organization,
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "method": e.method,
        "created_at": created.astimezone(UTC).isoformat(timespec="seconds"),
        "git_commit": e.git_commit,
        "key_id": e.key_id,
        "details": json.loads(e.details or "{}"),
    }


def list_entries(
    environ: Mapping[str, str],
    *,
    orgs: Sequence[str] = (),
    actions: Sequence[str] = (),
    since: str | None = None,
    fmt: str = "text",
) -> str:
    since_ts = _since(since)
    with _session(environ) as s:
        q = select(AuditEntry).order_by(AuditEntry.seq)
        if orgs:
            q = q.where(AuditEntry.organization.in_(orgs))
        if actions:
            q = q.where(AuditEntry.action.in_(actions))
        rows = [_row(e) for e in s.scalars(q) if since_ts is None or e.created_at >= since_ts]
    if fmt == "json":
        return json.dumps(rows, indent=2, sort_keys=True) + "\n"
    if not rows:
        return "No audit entries.\n"
    lines = [
        f"{r['seq']:>6}  {r['created_at']}  {r['organization']:<16} {r['action']:<24} "
        f"{r['target']}  by {r['actor']} via {r['method']}"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def verify_chain(environ: Mapping[str, str], expect_head: str | None) -> tuple[bool, str]:
    """(ok, the sentence to print). The key ring is read before the database is opened."""
    ring = keyring(environ)
    wanted = expect_head.strip().lower() if expect_head is not None else None
    with _session(environ) as s:
        result = verify(s, ring, wanted)
    if not result.ok:
        return False, f"Audit log verification FAILED: {result.problem}"
    extra = f" ({result.problem})" if result.problem else ""
    return True, f"Audit log verified: {result.entries} entries, head {result.head}{extra}."


def head(environ: Mapping[str, str]) -> str:
    """The head of a chain that verifies, to keep outside the database (``--expect-head``).

    The chain is verified first: a head read from a tampered log would vouch for the tampering.
    An empty log's head is the genesis value (64 zeros), which any later log extends.
    """
    ring = keyring(environ)
    with _session(environ) as s:
        result = verify(s, ring)
    if not result.ok:
        raise ReconcilerError(
            f"Audit log verification FAILED: {result.problem}; no head is printed for a log "
            "that does not verify"
        )
    return result.head
