"""Reviewing and making changes: validate, import, schema, plan, drift, apply."""

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
    paths_argument,
    plan_file_option,
    target_selection,
    with_orgs,
    workers_option,
)
from reconciler.commands.error_handler import EXIT_CHANGES, EXIT_ERROR, EXIT_OK
from reconciler.commands.logs import logging_options
from reconciler.commands.notifycmd import delivers


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
    from reconciler.commands.parse_ahead import parse_ahead

    with parse_ahead(paths) as ahead:  # parsed while the catalog's models are made
        from reconciler.commands.validatecmd import validate as run_validation

        result = run_validation(
            catalog_dir, paths, os.environ, require_env=require_env, ahead=ahead
        )
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
    from reconciler.commands.check_ahead import CheckAhead
    from reconciler.commands.frozen_imports import frozen_imports
    from reconciler.commands.parse_ahead import parse_ahead

    # the manifests are parsed and checked while the rest is imported and the database read
    check = CheckAhead(catalog_dir, provider_side=refresh)
    with parse_ahead(paths, check=check) as ahead:
        with frozen_imports():
            from reconciler.commands.run import make_plan
            from reconciler.commands.saved import save_plan
            from reconciler.core.render import render_json, render_markdown, render_text

        planned = make_plan(
            catalog_dir,
            paths,
            os.environ,
            target_selection(**where),
            refresh=refresh,
            parallelism=parallelism,
            ahead=ahead,
        )
    render = render_json if fmt == "json" else render_markdown if fmt == "markdown" else render_text
    click.echo(render(planned.plan, overrides=planned.overrides), nl=False)
    for error in planned.plan.errors:
        click.echo(f"Error: {error}", err=True)
    if out:
        save_plan(planned, Path(out))
        if fmt == "text":
            click.echo(
                f"Saved the plan to {out}. Apply exactly it with: reconciler apply --plan {out}"
            )
    if planned.plan.errors:
        return EXIT_ERROR
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
    found = run_drift(
        catalog_dir, paths, os.environ, target_selection(**where), parallelism=parallelism
    )
    click.echo(render(found, fmt), nl=False)
    for error in found.errors:
        click.echo(f"Error: {error.address}: {error.detail}", err=True)
    return exit_code(found.findings, found.errors)


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
@workers_option
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
    workers: int | None,
    **where: Any,
) -> int:
    """Make it so: create, update and tear down connections; check every new credential."""
    from reconciler.commands.check_ahead import CheckAhead
    from reconciler.commands.frozen_imports import frozen_imports
    from reconciler.commands.parse_ahead import parse_ahead

    # the manifests are parsed and checked while the rest is imported and the database read
    # (none are read for a saved plan)
    check = CheckAhead(catalog_dir, provider_side=True)
    with parse_ahead(paths, wanted=not plan_file, check=check) as ahead:
        with frozen_imports():
            from reconciler.commands import applycmd
            from reconciler.commands.progress import CheckProgress
            from reconciler.core.render import render_text, summary_line

        selection = target_selection(**where)
        # the workers are started once the plan needs them
        spares = applycmd.Spares(workers, parallelism, os.environ)
        try:
            planned = applycmd.plan_to_apply(
                catalog_dir,
                paths,
                selection,
                plan_file,
                os.environ,
                parallelism=parallelism,
                spares=spares,
                ahead=ahead,
            )
            if not planned.plan.has_changes:
                click.echo(summary_line(planned.plan))
                for error in planned.plan.errors:
                    click.echo(f"Error: {error}", err=True)
                return EXIT_ERROR if planned.plan.errors else EXIT_OK
            applycmd.refuse_too_many_deletions(planned.plan, max_deletions)
            click.echo(render_text(planned.plan, overrides=planned.overrides), nl=False)
            click.echo("")
            run = applycmd.ApplyRun(
                actor,
                parallelism,
                lock_timeout,
                from_saved_plan=bool(plan_file),
                workers=workers,
                shard=selection.shard,
            )
            with CheckProgress() as progress:
                report, failure = applycmd.carry_out(
                    planned,
                    run,
                    on_check=progress.on_check,
                    on_start=progress.on_start,
                    spares=spares,
                )
            summary = applycmd.summarize(
                report, planned.plan.errors, incomplete=failure is not None
            )
            for line in summary.lines:
                click.echo(line)
            click.echo(summary.closing, err=bool(summary.errors))
            for line in summary.errors:
                click.echo(line, err=True)
            if failure is not None:
                raise failure  # the error boundary prints it: exit 1, or 3 for a bug
            return summary.exit_code
        finally:
            spares.close()
