"""What a check's verdict means for one connection change, decided before anything is
written (pure: the verdicts and the rows read under the lock in, a ``Decision`` out)."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.apply.checks import CheckPhase
from reconciler.core.changes import Action, Change, ConnectionSpec
from reconciler.db.records import OrgRows
from reconciler.db.schema import Connection
from reconciler.health import CheckResult


@dataclass
class Decision:
    """What the check's verdict means for one connection change, before anything is written.

    ``statuses`` is (instance status, connection status) to set, or None to keep both (a
    failed rotation keeps the working credential). ``row`` is the connection row to write,
    None until ``create_rows`` makes it.
    """

    change: Change
    conn: ConnectionSpec
    result: CheckResult | None
    row: Connection | None
    had_working: bool
    blocked: bool
    failed: bool
    statuses: tuple[str, str] | None


def decide(ch: Change, phase: CheckPhase, rows: OrgRows) -> Decision:
    """What the check's verdict means for this connection, before anything is written.
    Pure: reads the phase's verdicts and the rows read under the lock."""
    conn = ch.connection
    assert conn is not None, "only creates, updates and adoptions are upserted"
    result = phase.results.get(ch.address)
    inst = rows.instances.get(ch.provider)
    row = rows.managed(inst) if inst is not None else None
    if ch.action is Action.ADOPT and inst is not None:
        row = next(
            (c for c in rows.connections.get(inst.id, []) if c.user_email == conn.owner),
            None,
        )
    had_working = (
        row is not None and row.status == "connected" and bool(rows.credentials.get(row.id))
    )
    failed = result is not None and not result.healthy
    statuses: tuple[str, str] | None
    if failed and had_working:
        statuses = None  # a failed rotation keeps the working credential and statuses
    elif failed:
        statuses = ("error", "error")
    elif result is not None:
        statuses = ("active" if conn.active else "inactive", "connected")
    else:
        # nothing was checked (inactive, or only settings changed): no status is earned
        # here, so an existing one stands, and a deactivated instance is inactive
        kept = inst.status if inst is not None and inst.status != "inactive" else "active"
        statuses = (
            kept if conn.active else "inactive",
            row.status if row is not None else "connected",
        )
    return Decision(
        ch, conn, result, row, had_working, ch.address in phase.blocked, failed, statuses
    )
