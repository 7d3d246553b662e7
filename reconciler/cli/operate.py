"""Watching what is there: health, status, catalog, notify, metrics, report."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from reconciler.cli.group import (
    actor_option,
    catalog_option,
    cli,
    format_option,
    parallelism_option,
    plan_file_option,
    target_selection,
    with_orgs,
    workers_option,
)
from reconciler.commands.error_handler import EXIT_ERROR, EXIT_OK
from reconciler.commands.logs import logging_options
from reconciler.commands.notifycmd import delivers


@cli.command()
@catalog_option
@with_orgs
@format_option
@actor_option
@parallelism_option
@workers_option
@logging_options
@delivers("health")
def health(
    catalog_dir: str | None,
    fmt: str,
    actor: str | None,
    parallelism: int,
    workers: int | None,
    **where: Any,
) -> int:
    """Re-check existing connections and record the results."""
    from reconciler.commands.frozen_imports import frozen_imports

    with frozen_imports():
        from reconciler.commands import healthcmd
        from reconciler.commands.healthcmd import run_health
        from reconciler.commands.inputs import actor_name
        from reconciler.commands.progress import CheckProgress
        from reconciler.commands.workers import (
            HEALTH_ORGS_PER_WORKER,
            health_in_workers,
            health_organizations,
            number_of_workers,
        )

    selection = target_selection(**{**where, "providers": ()})
    if workers != 1:
        workers = number_of_workers(
            workers,
            health_organizations(catalog_dir, os.environ, selection),
            parallelism,
            HEALTH_ORGS_PER_WORKER,
        )
    with CheckProgress(enabled=fmt != "json") as progress:
        if workers == 1:
            results = run_health(
                catalog_dir,
                os.environ,
                selection,
                providers=where["providers"],
                actor=actor_name(actor, os.environ),
                parallelism=parallelism,
                on_check=progress.on_check,
                on_start=progress.on_start,
            )
        else:
            results = health_in_workers(
                catalog_dir,
                os.environ,
                selection,
                workers=workers,
                providers=where["providers"],
                actor=actor_name(actor, os.environ),
                parallelism=parallelism,
                on_check=progress.on_check,
                on_start=progress.on_start,
            )
    usage = healthcmd.budget_alerts(catalog_dir, os.environ, target_selection(**where), results)
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

    sel = target_selection(**where)
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
