"""The command line: declarations and wiring. Parse, call, render, exit code.

Each command returns its exit code (0 success, 1 error, 2 ``plan --detailed-exitcode`` with
changes, 3 unexpected error); ``main(argv)`` returns it, so tests can call it. The work is in
``reconciler.commands``; errors become messages in one place (``commands.error_handler``).
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler import __version__
from reconciler.commands.error_handler import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, ReconcilerGroup
from reconciler.commands.logs import configure_logging, logging_options
from reconciler.commands.notifycmd import delivers

F = TypeVar("F", bound=Callable[..., Any])


catalog_option = click.option(
    "--catalog",
    "catalog_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Catalog folder (default: the shipped catalog).",
)
paths_argument = click.argument("paths", nargs=-1, type=click.Path())
format_option = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
actor_option = click.option(
    "--actor", default=None, help="Who is acting (default: RECONCILER_ACTOR, the user)."
)
plan_file_option = click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, exists=True),
    help="Apply exactly this saved plan (refused if stale).",
)
parallelism_option = click.option(
    "--parallelism", type=click.IntRange(1, 1000), default=10, help="Concurrent health checks."
)
org_options = [
    click.option("--org", "orgs", multiple=True, help="Only this organization (repeatable)."),
    click.option(
        "--exclude-org", "exclude_orgs", multiple=True, help="Not this organization (repeatable)."
    ),
    click.option(
        "--shard",
        default=None,
        help="K/N: only the organizations in shard K of N; auto (or auto/N) reads K and N from "
        "GitLab's parallel: or a Kubernetes Indexed Job.",
    ),
    click.option(
        "--provider",
        "providers",
        multiple=True,
        help="Only this provider's connections (repeatable).",
    ),
]


def with_orgs(fn: F) -> F:
    for opt in reversed(org_options):
        fn = opt(fn)
    return fn


@click.group(cls=ReconcilerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
@click.option("--verbose", is_flag=True, help="Debug output (as free of secrets as the rest).")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False),
    envvar="RECONCILER_LOG_FILE",
    default=None,
    help="Also write the log to this file (env RECONCILER_LOG_FILE).",
)
def cli(verbose: bool, log_file: str | None) -> None:
    """Manage Otesse integration connections as code: validate, plan, apply."""
    configure_logging(verbose, log_file)


def _selection(
    orgs: tuple[str, ...], exclude_orgs: tuple[str, ...], shard: str | None, providers: Any = ()
) -> Any:
    from reconciler.commands.inputs import Selection, parse_shard

    return Selection(
        include=orgs,
        exclude=exclude_orgs,
        shard=parse_shard(shard, os.environ),
        providers=providers,
    )


@cli.command()
@catalog_option
@paths_argument
@click.option(
    "--require-env",
    is_flag=True,
    help="Also fail when a variable the manifests name is not set (plan and apply always do).",
)
@logging_options
def validate(catalog_dir: str | None, paths: tuple[str, ...], require_env: bool) -> int:
    """Check the catalog and manifests without touching the database or the network.

    Secrets are not needed: a variable the manifests name but the environment lacks is a
    warning here (an error with --require-env, and always for plan and apply)."""
    from reconciler.commands.validatecmd import validate as run_validation

    result = run_validation(catalog_dir, paths, os.environ, require_env=require_env)
    for line in result.warnings:
        click.echo(line, err=True)
    click.echo(result.summary)
    return EXIT_OK


@cli.command(name="import")
@catalog_option
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder to write the manifests to (one per organization).",
)
@click.option("--org", "orgs", multiple=True, help="Only this organization (repeatable).")
@click.option(
    "--exclude-org", "exclude_orgs", multiple=True, help="Not this organization (repeatable)."
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@logging_options
def import_cmd(
    catalog_dir: str | None,
    out: str,
    orgs: tuple[str, ...],
    exclude_orgs: tuple[str, ...],
    force: bool,
) -> int:
    """Write one manifest per organization of the database, with credentials: keep.

    Reads the database only (no write, no encryption key, no secret needed). Connections made
    in the SaaS's screens get adopt: true; `plan` then shows only adopt changes for them."""
    from reconciler.commands.importcmd import run_import, selection_of

    result = run_import(
        catalog_dir, Path(out), os.environ, selection_of(orgs, exclude_orgs), force=force
    )
    for d in result.problems.items:
        click.echo(f"Warning: {d}", err=True)
    if not result.organizations:
        click.echo("No organization to import; nothing was written.")
        return EXIT_OK
    click.echo(
        f"Imported {result.organizations} organization(s), {result.connections} connection(s) "
        f"({result.adopted} to adopt) into {out}:"
    )
    for path in result.written:
        click.echo(f"  {path}")
    click.echo(f"Review them, then: reconciler validate {out} && reconciler plan {out}")
    return EXIT_OK


@cli.command()
@catalog_option
@logging_options
def schema(catalog_dir: str | None) -> int:
    """Print the JSON Schema of manifests (draft 2020-12) for editors and CI.

    Built from the catalog in effect: write it to a file with
    `reconciler schema > manifest.schema.json` and name that file in a
    `# yaml-language-server: $schema=manifest.schema.json` comment."""
    from reconciler.core.catalog import load_catalog
    from reconciler.core.manifest_schema import manifest_schema

    click.echo(json.dumps(manifest_schema(load_catalog(catalog_dir)), indent=2))
    return EXIT_OK


@cli.command()
@catalog_option
@paths_argument
@with_orgs
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text")
@click.option(
    "--out", type=click.Path(dir_okay=False), help="Save the plan to FILE for `apply --plan FILE`."
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
@click.option(
    "--refresh",
    type=click.BOOL,
    default=True,
    help="Read the providers' side (GET only); --refresh=false compares with the database only.",
)
@parallelism_option
@logging_options
def plan(
    catalog_dir: str | None,
    paths: tuple[str, ...],
    fmt: str,
    out: str | None,
    detailed_exitcode: bool,
    refresh: bool,
    parallelism: int,
    **where: Any,
) -> int:
    """Show what apply would do; change nothing."""
    from reconciler.commands.run import make_plan
    from reconciler.commands.saved import save_plan
    from reconciler.core.render import render_json, render_markdown, render_text

    planned = make_plan(
        catalog_dir,
        paths,
        os.environ,
        _selection(**where),
        refresh=refresh,
        parallelism=parallelism,
    )
    render = render_json if fmt == "json" else render_markdown if fmt == "markdown" else render_text
    click.echo(render(planned.plan, overrides=planned.overrides), nl=False)
    if out:
        save_plan(planned, Path(out))
        if fmt == "text":
            click.echo(
                f"Saved the plan to {out}. Apply exactly it with: reconciler apply --plan {out}"
            )
    return EXIT_CHANGES if detailed_exitcode and planned.plan.has_changes else EXIT_OK


@cli.command()
@catalog_option
@paths_argument
@with_orgs
@format_option
@parallelism_option
@logging_options
def drift(catalog_dir: str | None, paths: tuple[str, ...], fmt: str, **where: Any) -> int:
    """Report what differs between manifests, database and providers; change nothing."""
    from reconciler.commands.driftcmd import render, run_drift
    from reconciler.core.drift import exit_code

    parallelism = where.pop("parallelism")
    findings = run_drift(
        catalog_dir, paths, os.environ, _selection(**where), parallelism=parallelism
    )
    click.echo(render(findings, fmt), nl=False)
    return exit_code(findings)


@cli.command()
@catalog_option
@paths_argument
@with_orgs
@plan_file_option
@actor_option
@parallelism_option
@click.option(
    "--max-deletions",
    type=click.IntRange(0),
    help="Refuse a plan that deletes more than N connections.",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(0),
    default=30.0,
    help="Seconds to wait for an organization's lock.",
)
@logging_options
@delivers("apply")
def apply(
    catalog_dir: str | None,
    paths: tuple[str, ...],
    plan_file: str | None,
    actor: str | None,
    parallelism: int,
    max_deletions: int | None,
    lock_timeout: float,
    **where: Any,
) -> int:
    """Make it so: create, update and tear down connections; check every new credential."""
    from reconciler.commands import applycmd
    from reconciler.commands.progress import CheckProgress
    from reconciler.core.render import render_text, summary_line

    selection = _selection(**where)
    planned = applycmd.plan_to_apply(catalog_dir, paths, selection, plan_file, os.environ)
    if not planned.plan.has_changes:
        click.echo(summary_line(planned.plan))
        return EXIT_OK
    applycmd.refuse_too_many_deletions(planned.plan, max_deletions)
    click.echo(render_text(planned.plan, overrides=planned.overrides), nl=False)
    click.echo("")
    run = applycmd.ApplyRun(actor, parallelism, lock_timeout, from_saved_plan=bool(plan_file))
    with CheckProgress() as progress:
        report = applycmd.carry_out(
            planned, run, on_check=progress.on_check, on_start=progress.on_start
        )
    summary = applycmd.summarize(report)
    for line in summary.lines:
        click.echo(line)
    click.echo(summary.closing, err=bool(summary.errors))
    for line in summary.errors:
        click.echo(line, err=True)
    return summary.exit_code


@cli.command()
@catalog_option
@with_orgs
@format_option
@actor_option
@parallelism_option
@logging_options
@delivers("health")
def health(
    catalog_dir: str | None,
    fmt: str,
    actor: str | None,
    parallelism: int,
    **where: Any,
) -> int:
    """Re-check existing connections and record the results."""
    from reconciler.commands import healthcmd
    from reconciler.commands.healthcmd import run_health
    from reconciler.commands.inputs import actor_name
    from reconciler.commands.progress import CheckProgress

    with CheckProgress(enabled=fmt != "json") as progress:
        results = run_health(
            catalog_dir,
            os.environ,
            _selection(**{**where, "providers": ()}),
            providers=where["providers"],
            actor=actor_name(actor, os.environ),
            parallelism=parallelism,
            on_check=progress.on_check,
            on_start=progress.on_start,
        )
    usage = healthcmd.budget_alerts(catalog_dir, os.environ, _selection(**where), results)
    if fmt == "json":
        click.echo(json.dumps(results, indent=2, sort_keys=True, default=str))
    bad = [r for r in results if r["status"] != "healthy"]
    if fmt == "text":
        for r in results:
            for inc in r.get("incidents", ()):
                click.echo(f"Incident {inc['change']}: {r['address']} {inc['failure_type']}")
        for line in usage:
            click.echo(line)
        click.echo(f"{len(results) - len(bad)} healthy, {len(bad)} unhealthy.")
    return EXIT_ERROR if bad else EXIT_OK


@cli.command()
@catalog_option
@with_orgs
@format_option
@logging_options
def status(
    catalog_dir: str | None,
    fmt: str,
    **where: Any,
) -> int:
    """The "Connected Apps" view: instances, connections, resources and health."""
    from reconciler.commands.views import status_json, status_text

    sel = _selection(**where)
    if fmt == "json":
        click.echo(json.dumps(status_json(catalog_dir, os.environ, sel), indent=2, sort_keys=True))
    else:
        click.echo(status_text(catalog_dir, os.environ, sel), nl=False)
    return EXIT_OK


@cli.command(name="catalog")
@catalog_option
@click.option("--category", default=None, help="Only providers of this category.")
@click.option("--search", "query", default=None, help="Match name, display name or description.")
@click.argument("query_arg", required=False)
@format_option
@logging_options
def catalog_cmd(
    catalog_dir: str | None,
    category: str | None,
    query: str | None,
    query_arg: str | None,
    fmt: str,
) -> int:
    """Browse providers: search, filter by category."""
    from reconciler.commands.views import catalog_json, catalog_text

    q = query or query_arg
    if fmt == "json":
        click.echo(json.dumps(catalog_json(catalog_dir, category, q), indent=2, sort_keys=True))
    else:
        click.echo(catalog_text(catalog_dir, category, q), nl=False)
    return EXIT_OK


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
@logging_options
def notify() -> int:
    """Deliver every pending notification now; exit 1 if any is still undelivered."""
    from reconciler.commands.notifycmd import notify as deliver_all

    text, code = deliver_all(os.environ)
    click.echo(text, err=code != 0)
    return code


@cli.command()
@catalog_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write to FILE atomically (e.g. for the node exporter's textfile collector).",
)
@logging_options
def metrics(catalog_dir: str | None, out: str | None) -> int:
    """Print the fleet's state as OpenMetrics text (no label names an organization)."""
    from reconciler.commands.metricscmd import metrics_text, write_atomically

    text = metrics_text(catalog_dir, os.environ)
    if out:
        write_atomically(Path(out), text)
    else:
        click.echo(text, nl=False)
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


@cli.command()
@catalog_option
@click.option("--out", "out", type=click.Path(file_okay=False), required=True)
@plan_file_option
@logging_options
def report(catalog_dir: str | None, out: str, plan_file: str | None) -> int:
    """Write the static HTML report."""
    from reconciler.report import write_report

    written = write_report(Path(out), catalog_dir, os.environ, plan_file=plan_file)
    folder = Path(out)
    click.echo(f"Wrote {len(written)} page(s) to {folder} (open {folder / 'index.html'}).")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (``reconciler`` exits with it)."""
    # the objects made while importing live as long as the process: keeping the collector
    # from scanning them again and again saves ~10% of a big plan
    gc.freeze()
    args = list(argv) if argv is not None else None
    try:
        code = cli.main(args=args, prog_name="reconciler", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return EXIT_ERROR
    return code if isinstance(code, int) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
