"""The audit log: append-only entries chained with a keyed HMAC.

Each entry's HMAC (audit subkey of the key named in ``key_id``) covers its canonical content
and the previous entry's HMAC, so modifying, deleting, reordering or inserting a row breaks the
chain at that row, and whoever can write the table cannot recompute it without the key.

After ``keys rotate`` the rotation entry, MACed under the new key, attests a SHA-256 digest of
every earlier entry; once the old key is removed from the ring, entries under it are verified
through that attestation instead of their own HMAC.
"""

from __future__ import annotations

import hashlib
import hmac as hmac_mod
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from reconciler.crypto import KeyRing
from reconciler.db.schema import AuditEntry, StateMeta

GENESIS = "0" * 64


def canonical(entry: AuditEntry, prev: str) -> bytes:
    created = entry.created_at if entry.created_at.tzinfo else entry.created_at.replace(tzinfo=UTC)
    body = {
        "seq": entry.seq,
        "organization": entry.organization,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "method": entry.method,
        "details": json.loads(entry.details or "{}"),
        "git_commit": entry.git_commit,
        "created_at": created.astimezone(UTC).isoformat(timespec="microseconds"),
        "key_id": entry.key_id,
        "prev": prev,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _mac(key: bytes, entry: AuditEntry, prev: str) -> str:
    return hmac_mod.new(key, canonical(entry, prev), hashlib.sha256).hexdigest()


def chain_digest(entries: list[AuditEntry]) -> str:
    """Unkeyed SHA-256 over entries' content and MACs, attested by a rotation entry."""
    h = hashlib.sha256()
    for e in entries:
        h.update(canonical(e, "") + b"\0" + e.hmac.encode() + b"\0")
    return h.hexdigest()


@dataclass
class AuditWriter:
    """Appends entries inside the caller's transaction and bumps the state serial once.

    The state row is locked for update, so concurrent writers append one after the other and
    the chain stays linear.
    """

    session: Session
    keyring: KeyRing
    actor: str
    method: str
    git_commit: str | None = None

    def __post_init__(self) -> None:
        meta = self.session.scalar(select(StateMeta).where(StateMeta.id == 1).with_for_update())
        assert meta is not None, "the schema is created before anything is written"
        self._meta = meta
        meta.serial += 1

    def record(
        self, organization: str, action: str, target: str, details: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        meta = self._meta
        entry = AuditEntry(
            seq=meta.audit_seq + 1,
            organization=organization,
            actor=self.actor,
            action=action,
            target=target,
            method=self.method,
            details=json.dumps(dict(details or {}), sort_keys=True),
            git_commit=self.git_commit,
            created_at=datetime.now(UTC),
            key_id=self.keyring.primary_id,
            hmac="",
        )
        entry.hmac = _mac(self.keyring.audit_key(entry.key_id), entry, meta.audit_head or GENESIS)
        self.session.add(entry)
        meta.audit_seq = entry.seq
        meta.audit_head = entry.hmac
        return entry

    def attest_rotation(
        self, organization: str, target: str, details: Mapping[str, Any]
    ) -> AuditEntry:
        self.session.flush()
        earlier = list(self.session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        return self.record(
            organization,
            "keys.rotate",
            target,
            {**details, "attests_through": len(earlier), "attests_digest": chain_digest(earlier)},
        )


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    head: str
    problem: str = ""


def _entries(session: Session) -> Iterator[AuditEntry]:
    yield from session.scalars(select(AuditEntry).order_by(AuditEntry.id))


def verify(session: Session, keyring: KeyRing, expect_head: str | None = None) -> VerifyResult:
    """Walk the chain; name the first entry that does not verify."""
    prev = GENESIS
    seen: list[AuditEntry] = []
    unverified_from: int | None = None  # index of the first entry under a key no longer held
    count = 0
    for i, e in enumerate(_entries(session)):
        count += 1
        if e.seq != i + 1:
            return VerifyResult(
                False,
                count,
                prev,
                f"audit entry #{e.seq} (id {e.id}) is out of sequence: expected "
                f"#{i + 1}; an entry was deleted, inserted or reordered",
            )
        if e.key_id in keyring.key_ids:
            if not hmac_mod.compare_digest(_mac(keyring.audit_key(e.key_id), e, prev), e.hmac):
                return VerifyResult(
                    False,
                    count,
                    prev,
                    f"audit entry #{e.seq} (id {e.id}, {e.action} {e.target}) does "
                    "not verify: it was modified, or an entry before it was",
                )
            if e.action == "keys.rotate" and unverified_from is not None:
                d = json.loads(e.details or "{}")
                if d.get("attests_through") != i or d.get("attests_digest") != chain_digest(seen):
                    return VerifyResult(
                        False,
                        count,
                        prev,
                        f"audit entries before #{e.seq} do not match the digest "
                        "its key rotation attested",
                    )
                unverified_from = None
        elif unverified_from is None:
            unverified_from = i
        prev = e.hmac
        seen.append(e)
    if unverified_from is not None:
        e = seen[unverified_from]
        return VerifyResult(
            False,
            count,
            prev,
            f"audit entry #{e.seq} was signed with key {e.key_id!r}, which is not "
            "in RECONCILER_ENCRYPTION_KEYS, and no later key rotation attests it",
        )
    meta = session.get(StateMeta, 1)
    if meta is not None and count and (meta.audit_seq != count or meta.audit_head != prev):
        return VerifyResult(
            False,
            count,
            prev,
            f"the audit log ends at entry #{count} but the state records "
            f"#{meta.audit_seq}: entries were deleted from the end",
        )
    if (
        expect_head is not None
        and expect_head != prev
        and expect_head not in {e.hmac for e in seen}
    ):
        return VerifyResult(
            False, count, prev, "the expected head is not in the audit log: entries were removed"
        )
    if expect_head is not None and expect_head != prev:
        pos = next(x.seq for x in seen if x.hmac == expect_head)
        return VerifyResult(True, count, prev, f"the log has grown past the expected head (#{pos})")
    return VerifyResult(True, count, prev)
