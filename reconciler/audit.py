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
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol

from sqlalchemy import (
    Insert,
    ScalarResult,
    Select,
    Update,
    bindparam,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate

from reconciler.crypto import KeyRing
from reconciler.db.bulk import table_of
from reconciler.db.schema import AuditEntry, StateMeta

GENESIS = "0" * 64


class _EntryFields(Protocol):
    """What an entry's HMAC covers: a stored ``AuditEntry`` or one not yet written."""

    seq: int
    organization: str
    actor: str
    action: str
    target: str
    method: str
    details: str
    git_commit: str | None
    created_at: datetime
    key_id: str


def canonical(entry: _EntryFields, prev: str) -> bytes:
    """The bytes an entry's HMAC covers (``docs/audit-log.md``): its fields and ``prev``, the
    previous entry's HMAC, as JSON with sorted keys, no spaces, UTF-8, time in UTC to the
    microsecond. Decoding ``details`` first makes the MAC independent of how it is spaced."""
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


def _mac(key: bytes, entry: _EntryFields, prev: str) -> str:
    return hmac_mod.new(key, canonical(entry, prev), hashlib.sha256).hexdigest()


def digest_update(h: Any, entry: AuditEntry) -> None:
    """Add one entry (content and HMAC) to the running digest a key rotation attests."""
    h.update(canonical(entry, "") + b"\0" + entry.hmac.encode() + b"\0")


def chain_digest(entries: Iterable[AuditEntry]) -> tuple[int, str]:
    """How many entries, and the unkeyed SHA-256 over their content and HMACs, in order.

    Unkeyed on purpose: it is only trusted because a rotation entry, MACed under the new key,
    records it.
    """
    h = hashlib.sha256()
    n = 0
    for e in entries:
        digest_update(h, e)
        n += 1
    return n, h.hexdigest()


@contextmanager
def _entries(session: Session) -> Iterator[ScalarResult[AuditEntry]]:
    """Entries in insertion order (``id``), streamed (the log may be long); the server-side
    cursor is closed even when the caller stops at the first bad entry."""
    q = select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=500)
    result = session.scalars(q)
    try:
        yield result
    finally:
        result.close()


@dataclass(slots=True)
class PendingEntry:
    """An entry recorded in this transaction, chained and inserted when it commits (a plain
    record: an ORM object per entry cost more than its HMAC)."""

    organization: str
    actor: str
    action: str
    target: str
    method: str
    details: str
    git_commit: str | None
    created_at: datetime
    key_id: str
    seq: int = 0
    hmac: str = ""


_COLUMNS = (
    "seq",
    "organization",
    "actor",
    "action",
    "target",
    "method",
    "details",
    "git_commit",
    "created_at",
    "key_id",
    "hmac",
)


@dataclass
class ChainHead:
    """The state row's record of the last entry, as this transaction advances it."""

    seq: int
    head: str


@dataclass(frozen=True)
class _Statements:
    bump: Update
    bump_returning: ReturningUpdate[int, str]
    head: Select[int, str]
    set_head: Update
    insert: Insert


@cache
def _statements() -> _Statements:
    """Built once: an apply runs them for every organization (SQLAlchemy's compiled cache
    is keyed by a statement's structure, which a new statement object computes again)."""
    state = table_of(StateMeta)
    bump = update(state).where(state.c.id == 1).values(serial=state.c.serial + 1)
    return _Statements(
        bump=bump,
        bump_returning=bump.returning(state.c.audit_seq, state.c.audit_head),
        head=select(state.c.audit_seq, state.c.audit_head).where(state.c.id == 1),
        set_head=update(state)
        .where(state.c.id == 1)
        .values(audit_seq=bindparam("seq"), audit_head=bindparam("head")),
        insert=insert(table_of(AuditEntry)),
    )


@dataclass
class AuditWriter:
    """Appends entries inside the caller's transaction and bumps the state serial once.

    Entries are chained when the transaction commits: only then is the state row locked
    (``lock``), so concurrent writers append one after the other and the chain stays linear,
    while their writes before that (an organization's rows) run side by side. The row lock
    is held from the append to the commit, a moment.
    """

    session: Session
    keyring: KeyRing
    actor: str
    method: str
    git_commit: str | None = None

    def __post_init__(self) -> None:
        self._state: ChainHead | None = None
        self._pending: list[PendingEntry] = []
        # entries are inserted together, in order, when the transaction commits: one
        # statement for an organization's whole apply instead of one per entry
        event.listen(self.session, "before_commit", self._before_commit, once=True)

    def lock(self) -> ChainHead:
        """Lock the state row and bump the serial, once per transaction: the state has moved
        on when this commits. One Core ``UPDATE ... RETURNING`` (the row lock on PostgreSQL,
        the write lock on SQLite) instead of an ORM ``SELECT ... FOR UPDATE`` and a flush."""
        if self._state is None:
            st = _statements()
            if self.session.get_bind().dialect.update_returning:
                row = self.session.execute(st.bump_returning).one_or_none()
            else:  # SQLite before 3.35
                self.session.execute(st.bump)
                row = self.session.execute(st.head).one_or_none()
            assert row is not None, "the schema is created before anything is written"
            self._state = ChainHead(seq=row[0], head=row[1])
        return self._state

    def _before_commit(self, session: Session) -> None:
        self.write()
        self.lock()  # a transaction that wrote rows but no entry still moves the state on

    def write(self) -> None:
        """Chain the entries recorded so far and insert them (their ids follow their
        sequence)."""
        if not self._pending:
            return
        state = self.lock()
        for entry in self._pending:
            entry.seq = state.seq + 1
            entry.hmac = _mac(self.keyring.audit_key(entry.key_id), entry, state.head or GENESIS)
            state.seq = entry.seq
            state.head = entry.hmac
        rows = [{c: getattr(e, c) for c in _COLUMNS} for e in self._pending]
        self._pending = []
        st = _statements()
        self.session.execute(st.insert, rows)
        self.session.execute(st.set_head, {"seq": state.seq, "head": state.head})

    def record(
        self, organization: str, action: str, target: str, details: Mapping[str, Any] | None = None
    ) -> PendingEntry:
        """Record an entry; its sequence number and HMAC are set when it is written."""
        entry = PendingEntry(
            organization=organization,
            actor=self.actor,
            action=action,
            target=target,
            method=self.method,
            details=json.dumps(dict(details or {}), sort_keys=True),
            git_commit=self.git_commit,
            created_at=datetime.now(UTC),
            key_id=self.keyring.primary_id,
        )
        self._pending.append(entry)
        return entry

    def attest_rotation(
        self, organization: str, target: str, details: Mapping[str, Any]
    ) -> PendingEntry:
        """Record a key rotation that attests every earlier entry (count and digest), so they
        stay verifiable once the key that MACed them leaves the ring."""
        self.write()
        self.session.flush()
        with _entries(self.session) as earlier:
            through, digest = chain_digest(earlier)
        return self.record(
            organization,
            "keys.rotate",
            target,
            {**details, "attests_through": through, "attests_digest": digest},
        )


@dataclass(frozen=True)
class VerifyResult:
    """What ``verify`` found. ``problem`` names the first bad entry when ``ok`` is false; when
    ``ok`` is true it may carry a remark (the log has grown past the expected head)."""

    ok: bool
    entries: int
    head: str
    problem: str = ""


def _describe(e: AuditEntry) -> str:
    return f"audit entry #{e.seq} (id {e.id}, {e.action} {e.target})"


@dataclass
class _Walk:
    """The state of one pass over the chain."""

    keyring: KeyRing
    prev: str = GENESIS
    count: int = 0
    digest: Any = field(default_factory=hashlib.sha256)  # of every entry seen, for attestations
    unverified: str | None = None  # the first entry under a key no longer held, not yet attested
    expect_head: str | None = None
    expected_seq: int | None = None  # where ``expect_head`` was found

    def step(self, e: AuditEntry) -> str | None:
        """Check one entry against the chain so far; a problem sentence, or None."""
        index = self.count
        self.count += 1
        if e.seq != index + 1:
            return (
                f"audit entry #{e.seq} (id {e.id}) is out of sequence: expected #{index + 1}; "
                "an entry was deleted, inserted or reordered"
            )
        try:
            problem = self._authenticate(e, index)
            digest_update(self.digest, e)
        except (ValueError, TypeError, AttributeError):  # malformed details, NULLs written by SQL
            return f"{_describe(e)} is malformed: it was modified outside the reconciler"
        self.prev = e.hmac
        if e.hmac == self.expect_head:
            self.expected_seq = e.seq
        return problem

    def _authenticate(self, e: AuditEntry, index: int) -> str | None:
        if e.key_id not in self.keyring.key_ids:
            if self.unverified is None:
                self.unverified = (
                    f"audit entry #{e.seq} (id {e.id}) was signed with key {e.key_id!r}, which "
                    "is not in RECONCILER_ENCRYPTION_KEYS, and no later key rotation attests it"
                )
            return None
        expected = _mac(self.keyring.audit_key(e.key_id), e, self.prev)
        if not hmac_mod.compare_digest(expected, e.hmac or ""):
            return (
                f"{_describe(e)} does not verify: it was modified, inserted, or an entry "
                "before it was removed or changed"
            )
        if e.action == "keys.rotate" and self.unverified is not None:
            d = json.loads(e.details or "{}")
            if (
                d.get("attests_through") != index
                or d.get("attests_digest") != self.digest.hexdigest()
            ):
                return (
                    f"audit entries before #{e.seq} do not match the digest its key rotation "
                    "attested: one of them was modified, inserted or removed"
                )
            self.unverified = None
        return None


def verify(session: Session, keyring: KeyRing, expect_head: str | None = None) -> VerifyResult:
    """Walk the chain; name the first entry that does not verify.

    Checks, in order: each entry's sequence number and HMAC over the previous entry's HMAC;
    entries under keys no longer in the ring against the digest a later rotation attested; the
    end of the log against the state row (a deleted tail); and, given ``expect_head`` (kept
    outside the database), that the entry it names is still in the log.
    """
    walk = _Walk(keyring, expect_head=expect_head)
    with _entries(session) as entries:
        for e in entries:
            problem = walk.step(e)
            if problem is not None:
                return VerifyResult(False, walk.count, walk.prev, problem)
    if walk.unverified is not None:
        return VerifyResult(False, walk.count, walk.prev, walk.unverified)
    return _check_end(session, walk, expect_head)


def _check_end(session: Session, walk: _Walk, expect_head: str | None) -> VerifyResult:
    """The tail: the state row's record of the last entry, then the head kept outside."""
    meta = session.get(StateMeta, 1)
    if meta is not None and (
        meta.audit_seq != walk.count or (meta.audit_head or GENESIS) != walk.prev
    ):
        return VerifyResult(
            False,
            walk.count,
            walk.prev,
            f"the audit log ends at entry #{walk.count} but the state records entry "
            f"#{meta.audit_seq} as the last: entries were deleted from the end",
        )
    if expect_head is None or expect_head == walk.prev:
        return VerifyResult(True, walk.count, walk.prev)
    if expect_head == GENESIS:
        return VerifyResult(True, walk.count, walk.prev, "the log has grown since it was empty")
    if walk.expected_seq is None:
        return VerifyResult(
            False,
            walk.count,
            walk.prev,
            "the expected head is not in the audit log: entries were removed from the end "
            "(or the head was not printed by `reconciler audit head` for this database)",
        )
    return VerifyResult(
        True,
        walk.count,
        walk.prev,
        f"the log has grown past the expected head, entry #{walk.expected_seq}",
    )
