"""SQLAlchemy models of the six tables the SaaS reads, plus the tool's own bookkeeping.

Table and column names of SPEC section 3 are fixed; the rest are ours. Unique constraints
make duplicate rows impossible even when a process is killed half-way and the next apply
retries.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def in_utc(ts: datetime) -> datetime:
    """An aware date-time in UTC; a naive one is taken to be UTC (the tool writes UTC)."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A date-time column that always reads back aware and in UTC: SQLite hands back naive
    datetimes, PostgreSQL hands them back in the session's time zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else in_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else in_utc(value)


class Base(DeclarativeBase):
    pass


class Instance(Base):
    """An organization's activation of a provider."""

    __tablename__ = "integration_instances"
    __table_args__ = (
        UniqueConstraint("organization", "provider", name="uq_instance_org_provider"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization: Mapped[str] = mapped_column(String(128), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # active | inactive | error
    # manifest (ours) | orphaned | anything else, e.g. ui: written by the SaaS, never touched
    managed_by: Mapped[str] = mapped_column(String(32), server_default="ui")
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )


class Connection(Base):
    """One user's authenticated link to an instance."""

    __tablename__ = "integration_connections"
    __table_args__ = (UniqueConstraint("instance_id", "user_email", name="uq_connection_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("integration_instances.id", ondelete="CASCADE"), index=True
    )
    user_email: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16))  # connected | error
    managed_by: Mapped[str] = mapped_column(String(32), server_default="ui")
    deletion_policy: Mapped[str] = mapped_column(  # delete | orphan
        String(16), default="delete", server_default="delete"
    )
    prevent_destroy: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    identity: Mapped[str] = mapped_column(  # JSON: account id, mode, ...
        Text, default="{}", server_default="{}"
    )
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )


class Credential(Base):
    """One encrypted credential field; the fingerprint lets plan see a change without decrypting."""

    __tablename__ = "integration_credentials"
    __table_args__ = (UniqueConstraint("connection_id", "field", name="uq_credential_field"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connection_id: Mapped[int] = mapped_column(
        ForeignKey("integration_connections.id", ondelete="CASCADE"), index=True
    )
    field: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(128), server_default="")
    fingerprint_key_id: Mapped[str] = mapped_column(String(64), server_default="")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )


class Resource(Base):
    """One configured resource (sender email, phone number, webhook endpoint, model setting...)."""

    __tablename__ = "integration_resources"
    __table_args__ = (
        UniqueConstraint("instance_id", "kind", "identity", name="uq_resource_identity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("integration_instances.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(64))
    identity: Mapped[str] = mapped_column(String(512), server_default="")
    spec: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")  # JSON
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    managed_by: Mapped[str] = mapped_column(String(32), server_default="ui")
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )
    # the object at the provider (SPEC section 8; migration 0004)
    remote_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    remote_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    remote_replaces: Mapped[str | None] = mapped_column(String(128), nullable=True)
    remote_adopted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class PendingCreate(Base):
    """A create without an idempotency key (Postmark, Quo) about to be sent (SPEC section 8),
    committed before it is; deleted with the commit that records the provider's answer."""

    __tablename__ = "reconciler_pending_creates"
    __table_args__ = (
        UniqueConstraint("organization", "provider", "kind", "identity", name="uq_pending_create"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization: Mapped[str] = mapped_column(String(128))
    provider: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    identity: Mapped[str] = mapped_column(String(512))
    generation: Mapped[int] = mapped_column(Integer)
    replaces: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Health(Base):
    """One health-check result."""

    __tablename__ = "integration_health"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("integration_instances.id", ondelete="CASCADE"), index=True
    )
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("integration_connections.id", ondelete="SET NULL"), nullable=True, index=True
    )
    status: Mapped[str] = mapped_column(String(16))  # healthy | unhealthy
    failure_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message: Mapped[str] = mapped_column(Text)
    response_ms: Mapped[int] = mapped_column(Integer)
    provider_code: Mapped[str | None] = mapped_column(String(128), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    checked_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )


class AuditEntry(Base):
    """One audit entry: who, when, what, how. Append-only; chained with a keyed HMAC."""

    __tablename__ = "integration_audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    organization: Mapped[str] = mapped_column(String(128), index=True)
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512))
    method: Mapped[str] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text, default="{}")  # JSON, never secret values
    git_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    key_id: Mapped[str] = mapped_column(String(64))
    hmac: Mapped[str] = mapped_column(String(128))


class StateMeta(Base):
    """The identity of the state: a lineage fixed per database, a serial bumped per write."""

    __tablename__ = "reconciler_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lineage: Mapped[str] = mapped_column(String(64))
    serial: Mapped[int] = mapped_column(Integer, default=0)
    audit_head: Mapped[str] = mapped_column(String(128), default="")
    audit_seq: Mapped[int] = mapped_column(Integer, default=0)


class LockHolder(Base):
    """Who is applying, for the message of an apply that waits in vain (SQLite only).

    SQLite's write lock does not say who holds it, so an apply commits one row here before it
    first waits for the lock, and removes it when the command ends
    (``db.sqlite_lock.release_announcements``). Nothing ever waits on these rows: a row left
    by a killed process is only information, ignored once its process is gone and removed by
    the next apply.
    """

    __tablename__ = "reconciler_locks"

    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    organization: Mapped[str] = mapped_column(String(128))
    holder: Mapped[str] = mapped_column(String(256))
    host: Mapped[str] = mapped_column(String(256))
    pid: Mapped[int] = mapped_column(Integer)
    since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Incident(Base):
    """A broken connection as a person sees it: opened by the first failing check of one
    failure type, resolved after enough consecutive healthy checks, then kept as history.

    ``open_key`` is ``organization/provider/failure_type`` while the incident is open and NULL
    once it is resolved: its unique constraint allows one open incident per key on every
    database (NULLs are distinct), however many resolved ones the history holds.
    """

    __tablename__ = "integration_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(40), unique=True)  # inc_..., in every event
    organization: Mapped[str] = mapped_column(String(128), index=True)
    provider: Mapped[str] = mapped_column(String(64))
    failure_type: Mapped[str] = mapped_column(String(32))
    open_key: Mapped[str | None] = mapped_column(String(256), unique=True, nullable=True)
    message: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failures: Mapped[int] = mapped_column(Integer, default=1)  # failing checks while open
    healthy_streak: Mapped[int] = mapped_column(Integer, default=0)  # healthy checks since


class Notification(Base):
    """The outbox: one event (``incident.opened`` / ``incident.resolved``) to deliver to
    RECONCILER_NOTIFY_URL. Written in the transaction of the health result that caused it;
    the body is stored as sent, so every attempt carries the same id and bytes."""

    __tablename__ = "reconciler_notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    incident_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    body: Mapped[str] = mapped_column(Text)  # JSON, no secret
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(256), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)


class Run(Base):
    """When each command last finished and how (for ``reconciler metrics``): one row per
    command, overwritten by every run."""

    __tablename__ = "reconciler_runs"

    command: Mapped[str] = mapped_column(String(32), primary_key=True)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    exit_code: Mapped[int] = mapped_column(Integer)
