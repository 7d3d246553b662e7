"""What apply sends to the providers before an organization's write transaction: which
resource changes go out (those ``OrgWriter.upsert`` will record), and with which credentials."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.apply.checks import CheckPhase
from reconciler.apply.decisions import Decision, decide
from reconciler.core.changes import Change, ConnectionSpec, Kind
from reconciler.core.remote import is_signing_secret_field
from reconciler.core.secret import Secret
from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.records import OrgRows


@dataclass(frozen=True)
class Send:
    """A change to carry out at its provider, with the credentials it is sent with."""

    change: Change
    credentials: Mapping[str, Secret]


def credentials_for(
    ch: Change,
    rows: OrgRows,
    connections: Mapping[str, ConnectionSpec],
    secrets: Mapping[str, Secret],
    keyring: KeyRing,
) -> dict[str, Secret]:
    """The credentials a change is sent with: the manifest's new values where this apply
    stores them (``connections``: the connections it writes), else the stored ones."""
    out: dict[str, Secret] = {}
    inst = rows.instances.get(ch.provider)
    row = rows.managed(inst) if inst is not None else None
    if row is not None:
        for cr in rows.credentials.get(row.id, []):
            if is_signing_secret_field(cr.field):
                continue
            addr = CredentialAddress(ch.organization, ch.provider, row.user_email, cr.field)
            out[cr.field] = Secret(keyring.decrypt(cr.ciphertext, addr), cr.field)
    conn = connections.get(ch.provider)
    if conn is not None:
        for ref in conn.credentials:
            if ref.variable and ref.variable in secrets:
                out[ref.field] = secrets[ref.variable]
    return out


def not_connecting(decisions: list[Decision]) -> set[str]:
    """The connections (addresses) an upsert leaves unconnected: blocked or failed checks."""
    return {d.change.address for d in decisions if d.blocked or d.failed}


def to_send(changes: list[Change], phase: CheckPhase, rows: OrgRows) -> list[Change]:
    """The resource changes among ``changes`` (an upsert) that go to their provider: neither
    rejected by a check nor of a connection that does not connect (``OrgWriter.upsert`` skips
    those). Sent before the upsert's transaction begins."""
    decisions = [decide(c, phase, rows) for c in changes if c.kind is Kind.CONNECTION]
    failed = not_connecting(decisions)
    return [
        c
        for c in changes
        if c.kind is not Kind.CONNECTION
        and c.remote
        and c.address not in phase.rejected
        and c.parent not in failed
    ]
