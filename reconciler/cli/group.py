"""The command group, its global options, and the options commands share."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from reconciler import __version__
from reconciler.commands.error_handler import ReconcilerGroup
from reconciler.commands.logs import configure_logging

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
workers_option = click.option(
    "--workers",
    type=click.IntRange(1, 64),
    envvar="RECONCILER_WORKERS",
    default=None,
    help="Processes that split the organizations (default: one per 100 organizations for "
    "apply, 500 for health, up to the number of CPUs; env RECONCILER_WORKERS).",
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


def target_selection(
    orgs: tuple[str, ...], exclude_orgs: tuple[str, ...], shard: str | None, providers: Any = ()
) -> Any:
    from reconciler.commands.inputs import Selection, parse_shard

    return Selection(
        include=orgs,
        exclude=exclude_orgs,
        shard=parse_shard(shard, os.environ),
        providers=providers,
    )
