"""Which schema revision a database is at, and bringing it to this tool's revision.

Every command checks the revision before it reads (``check_schema``): a database behind this
tool is migrated with ``reconciler db upgrade``; one ahead of it (migrated by a newer release)
is left alone, because an older tool would misread or damage it.

Migrations are Alembic revisions shipped in ``reconciler/db/migrations``; they run inside one
transaction under a database-wide schema lock, so two workers starting on a fresh database do
not both create the tables, and a migration killed half-way leaves the old schema intact.
Alembic itself is imported only when a migration runs: the check is one plain query.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    select,
    text,
)

from reconciler.core.errors import ConfigError
from reconciler.db.schema import StateMeta

# Not "alembic_version": the SaaS application's own Alembic may share this database.
VERSION_TABLE = "reconciler_schema_version"
# Every revision in order, oldest first (tests/db checks this against the migrations folder).
REVISIONS = ("0001", "0002", "0003", "0004")
FIRST = REVISIONS[0]
HEAD = REVISIONS[-1]
MIGRATIONS = Path(__file__).with_name("migrations")
_VERSION = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32), primary_key=True))
# PostgreSQL advisory lock serializing migrations; its namespace differs from the organizations'.
SCHEMA_LOCK = (0x5EC1, 1)
UPGRADE_COMMAND = "reconciler db upgrade"


@dataclass(frozen=True)
class SchemaState:
    """What a database holds: the recorded revision (if any) and whether our tables exist."""

    revision: str | None
    has_tables: bool

    @property
    def empty(self) -> bool:
        return self.revision is None and not self.has_tables

    @property
    def current(self) -> bool:
        return self.revision == HEAD

    @property
    def newer(self) -> bool:
        return self.revision is not None and self.revision not in REVISIONS

    @property
    def older(self) -> bool:
        return not (self.empty or self.current or self.newer)


def read_state(conn: Connection) -> SchemaState:
    insp = inspect(conn)
    revision = None
    if insp.has_table(VERSION_TABLE):
        revision = conn.execute(select(_VERSION.c.version_num)).scalar()
    return SchemaState(revision, insp.has_table("integration_instances"))


def problem(state: SchemaState) -> str:
    """The sentence a command prints when it refuses the database's schema."""
    if state.newer:
        return (
            f"the database schema is at revision {state.revision}, newer than this reconciler "
            f"knows (it knows up to {HEAD}): the database was migrated by a newer release. "
            "Upgrade reconciler to that release; nothing was read or written."
        )
    found = (
        f"revision {state.revision}"
        if state.revision
        else "a version from before schema migrations"
    )
    return (
        f"the database schema is at {found}, older than this reconciler's ({HEAD}). "
        f"Run `{UPGRADE_COMMAND}` first (it keeps every row); nothing was read or written."
    )


def check_schema(engine: Engine) -> bool:
    """True when the schema is this tool's; False when the database has none yet (plan shows
    everything as create); ConfigError naming the command to run when it is older or newer."""
    with engine.connect() as conn:
        state = read_state(conn)
    if state.empty:
        return False
    if state.current:
        return True
    raise ConfigError(problem(state))


def upgrade_schema(engine: Engine, target: str | None = None) -> tuple[str | None, str]:
    """Create the schema or migrate it to ``target`` (default: this tool's head), keeping every
    row. Returns the revisions before and after. Never downgrades."""
    target = target or HEAD
    with engine.connect() as conn:
        state = read_state(conn)
        if state.revision == target and _has_state_row(conn):
            return state.revision, target
        conn.rollback()
    with engine.connect() as conn, conn.begin():
        _take_schema_lock(conn)
        state = read_state(conn)  # again, under the lock: another worker may have migrated
        if state.newer:
            raise ConfigError(problem(state))
        if state.revision != target:
            _run_alembic(conn, state, target)
        _ensure_state_row(conn)
    return state.revision, target


def _take_schema_lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:ns, :key)"),
            {"ns": SCHEMA_LOCK[0], "key": SCHEMA_LOCK[1]},
        )
    elif conn.dialect.name == "sqlite":
        # pysqlite runs DDL outside a transaction unless one is open: open it, with the write
        # lock, so the whole migration is one atomic step
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _run_alembic(conn: Connection, state: SchemaState, target: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    if state.revision is None and state.has_tables:
        # made by create_all before migrations existed: that is the first revision
        command.stamp(cfg, FIRST)
    command.upgrade(cfg, target)


def _has_state_row(conn: Connection) -> bool:
    return conn.execute(select(StateMeta.id).where(StateMeta.id == 1)).first() is not None


def _ensure_state_row(conn: Connection) -> None:
    if not _has_state_row(conn):
        conn.execute(
            insert(StateMeta).values(
                id=1, lineage=str(uuid.uuid4()), serial=0, audit_head="", audit_seq=0
            )
        )
