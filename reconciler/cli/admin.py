"""Keeping the tool itself: audit, keys, db, simulate."""

from __future__ import annotations

import os

import click

from reconciler.cli.group import (
    cli,
    format_option,
)
from reconciler.commands.error_handler import EXIT_ERROR, EXIT_OK
from reconciler.commands.logs import logging_options
from reconciler.commands.notifycmd import delivers


@cli.group(invoke_without_command=True)
@click.option("--org", "orgs", multiple=True)
@click.option("--action", "actions", multiple=True)
@click.option("--since", default=None, help="ISO date or time, e.g. 2026-11-01.")
@format_option
@click.pass_context
@logging_options
def audit(
    ctx: click.Context, orgs: tuple[str, ...], actions: tuple[str, ...], since: str | None, fmt: str
) -> int:
    """List audit entries (see also: audit verify, audit head)."""
    if ctx.invoked_subcommand is not None:
        return EXIT_OK
    from reconciler.commands.auditcmd import list_entries

    click.echo(list_entries(os.environ, orgs=orgs, actions=actions, since=since, fmt=fmt), nl=False)
    return EXIT_OK


@audit.command(name="verify")
@click.option("--expect-head", default=None, help="A head printed earlier by `audit head`.")
@logging_options
def audit_verify(expect_head: str | None) -> int:
    """Detect tampering: modified, deleted, reordered or inserted entries."""
    from reconciler.commands.auditcmd import verify_chain

    ok, message = verify_chain(os.environ, expect_head)
    click.echo(message, err=not ok)
    return EXIT_OK if ok else EXIT_ERROR


@audit.command(name="head")
@logging_options
def audit_head() -> int:
    """Print the current head of the audit chain, to keep outside the database."""
    from reconciler.commands.auditcmd import head

    click.echo(head(os.environ))
    return EXIT_OK


@cli.group()
def keys() -> None:
    """Encryption keys: generate an entry, count credentials per key, rotate."""


@keys.command(name="generate")
@click.option("--key-id", default=None)
@logging_options
def keys_generate(key_id: str | None) -> int:
    """Print a new KEY_ID:BASE64 entry for RECONCILER_ENCRYPTION_KEYS."""
    from reconciler.crypto import generate_entry

    click.echo(generate_entry(key_id))
    return EXIT_OK


@keys.command(name="status")
@logging_options
def keys_status() -> int:
    """How many credentials each key id protects."""
    from reconciler.commands.keyscmd import key_status

    click.echo(key_status(os.environ), nl=False)
    return EXIT_OK


@keys.command(name="rotate")
@click.option("--actor", default=None)
@logging_options
@delivers("keys rotate")
def keys_rotate(actor: str | None) -> int:
    """Re-encrypt every credential under the first key, in one transaction."""
    from reconciler.commands.inputs import actor_name
    from reconciler.commands.keyscmd import rotate

    click.echo(rotate(os.environ, actor_name(actor, os.environ)))
    return EXIT_OK


@cli.group()
def db() -> None:
    """Database schema."""


@db.command(name="upgrade")
@logging_options
def db_upgrade() -> int:
    """Create or migrate the schema."""
    from reconciler.db.engine import database_url, ensure_schema, make_engine

    ensure_schema(make_engine(database_url(os.environ)))
    click.echo("The database schema is up to date.")
    return EXIT_OK


@cli.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", type=int, default=8765)
@click.option("--latency-ms", type=float, default=0.0)
@click.option("--failure-rate", type=click.FloatRange(0, 1), default=0.0)
@logging_options
def simulate(host: str, port: int, latency_ms: float, failure_rate: float) -> int:
    """Run the local provider simulator (demo, tests, staging)."""
    from reconciler.simulator import run

    run(host, port, latency_ms=latency_ms, failure_rate=failure_rate)
    return EXIT_OK
