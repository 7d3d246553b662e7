"""The command line: parse, call, render, exit code. The work is in ``reconciler.commands``."""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler import __version__
from reconciler.core.errors import InputError, ReconcilerError

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("reconciler")


_LOGGING: dict[str, Any] = {"verbose": False, "log_file": None}


def _logging_option(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    """A callback that records one logging option and reconfigures logging, so --verbose and
    --log-file work after the command name as well as before it."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value:
            _LOGGING[name] = value
            _configure_logging(_LOGGING["verbose"], _LOGGING["log_file"])

    return callback


def _configure_logging(verbose: bool, log_file: str | None) -> None:
    _LOGGING.update(verbose=verbose, log_file=log_file)
    level = logging.DEBUG if verbose else logging.WARNING
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_reconciler", False):
            root.removeHandler(h)
            h.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for h in handlers:
        h.setFormatter(fmt)
        h._reconciler = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(level)
    logging.getLogger("reconciler").setLevel(level)
    # the HTTP stack logs URLs (some carry a key in the query string) and headers: keep it quiet
    for noisy in ("httpx", "httpcore", "hpack", "sqlalchemy.engine", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def handled(fn: F) -> F:
    """Turn our errors into a message and exit code 1; anything else into a short notice."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as e:
            for d in e.diagnostics.items:
                click.echo(f"{'Error' if d.severity == 'error' else 'Warning'}: {d}", err=True)
            n = len(e.diagnostics.errors)
            click.echo(f"{n} problem{'s' if n != 1 else ''} found; nothing was written.", err=True)
            sys.exit(1)
        except ReconcilerError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)
        except click.exceptions.Exit:
            raise
        except (click.ClickException, click.Abort):
            raise
        except Exception as e:
            if type(e).__module__.startswith("sqlalchemy.exc") and hasattr(e, "orig"):
                # the database is down, refused us, or is not ours: say so plainly (bound
                # parameters are hidden by the engine; the driver's first line names the cause)
                first = str(e.orig).strip().splitlines()[0] if str(e.orig).strip() else ""
                click.echo(
                    f"Error: the database failed: {type(e.orig).__name__}: {first}. "
                    "Check RECONCILER_DATABASE_URL and that the server is up.",
                    err=True,
                )
                log.debug("database error\n%s", "".join(traceback.format_exception(e)))
                sys.exit(1)
            # The traceback may name values; it goes to a log file only in --verbose, sanitized
            # by the same rules: our secrets are wrapped and never formatted as plaintext.
            click.echo(
                f"An unexpected error has occurred: {type(e).__name__}. "
                "Run with --verbose for details.",
                err=True,
            )
            log.debug("unexpected error\n%s", "".join(traceback.format_exception(e)))
            sys.exit(1)
        finally:
            from reconciler.db.engine import dispose_all

            dispose_all()

    wrapper = click.option(
        "--log-file",
        type=click.Path(dir_okay=False),
        expose_value=False,
        callback=_logging_option("log_file"),
        help="Also write the log to this file.",
    )(wrapper)
    wrapper = click.option(
        "--verbose",
        is_flag=True,
        expose_value=False,
        callback=_logging_option("verbose"),
        help="Debug output (as free of secrets as the rest).",
    )(wrapper)
    return wrapper  # type: ignore[return-value]


catalog_option = click.option(
    "--catalog",
    "catalog_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Catalog folder (default: the shipped catalog).",
)
paths_argument = click.argument("paths", nargs=-1, type=click.Path())
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    _configure_logging(verbose, log_file)


def _selection(
    orgs: tuple[str, ...],
    exclude_orgs: tuple[str, ...],
    shard: str | None,
    providers: tuple[str, ...] = (),
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
@handled
def validate(catalog_dir: str | None, paths: tuple[str, ...], require_env: bool) -> None:
    """Check the catalog and manifests without touching the database or the network.

    Secrets are not needed: a variable the manifests name but the environment lacks is a
    warning here (an error with --require-env, and always for plan and apply)."""
    from reconciler.commands.inputs import load_inputs, unset_variables

    inputs = load_inputs(catalog_dir, paths, os.environ, resolve_secrets=require_env)
    missing = unset_variables(inputs.desired, os.environ)
    for var, where in missing:
        click.echo(
            f"Warning: {where}: environment variable {var} is not set; plan and apply "
            "will need it.",
            err=True,
        )
    n_orgs = len(inputs.desired.organizations)
    n_conn = sum(len(o.connections) for o in inputs.desired.organizations.values())
    click.echo(
        f"Valid: {len(inputs.files)} manifest file(s), {n_orgs} organization(s), "
        f"{n_conn} connection(s), {len(inputs.catalog.providers)} provider(s) in the catalog."
    )


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
@handled
def import_cmd(
    catalog_dir: str | None,
    out: str,
    orgs: tuple[str, ...],
    exclude_orgs: tuple[str, ...],
    force: bool,
) -> None:
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
        return
    click.echo(
        f"Imported {result.organizations} organization(s), {result.connections} connection(s) "
        f"({result.adopted} to adopt) into {out}:"
    )
    for path in result.written:
        click.echo(f"  {path}")
    click.echo(f"Review them, then: reconciler validate {out} && reconciler plan {out}")


@cli.command()
@catalog_option
@handled
def schema(catalog_dir: str | None) -> None:
    """Print the JSON Schema of manifests (draft 2020-12) for editors and CI.

    Built from the catalog in effect: write it to a file with
    `reconciler schema > manifest.schema.json` and name that file in a
    `# yaml-language-server: $schema=manifest.schema.json` comment."""
    from reconciler.core.catalog import load_catalog
    from reconciler.core.manifest_schema import manifest_schema

    click.echo(json.dumps(manifest_schema(load_catalog(catalog_dir)), indent=2))


@cli.command()
@catalog_option
@paths_argument
@with_orgs
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Save the plan to FILE for `apply --plan FILE`.",
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
@handled
def plan(
    catalog_dir: str | None,
    paths: tuple[str, ...],
    orgs: tuple[str, ...],
    exclude_orgs: tuple[str, ...],
    shard: str | None,
    providers: tuple[str, ...],
    fmt: str,
    out: str | None,
    detailed_exitcode: bool,
) -> None:
    """Show what apply would do; change nothing."""
    from reconciler.commands.run import make_plan
    from reconciler.commands.saved import save_plan
    from reconciler.core.render import render_json, render_markdown, render_text

    planned = make_plan(
        catalog_dir, paths, os.environ, _selection(orgs, exclude_orgs, shard, providers)
    )
    if fmt == "json":
        click.echo(render_json(planned.plan, overrides=planned.overrides), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(planned.plan, overrides=planned.overrides), nl=False)
    else:
        click.echo(render_text(planned.plan, overrides=planned.overrides), nl=False)
    if out:
        save_plan(planned, Path(out))
        if fmt == "text":
            click.echo(
                f"Saved the plan to {out}. Apply exactly it with: reconciler apply --plan {out}"
            )
    if detailed_exitcode and planned.plan.has_changes:
        sys.exit(2)


class CheckProgress:
    """Finished health checks: a progress bar on a terminal, one line per check in a pipeline."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.total: int | None = None
        self._progress: Any = None
        self._task: Any = None

    def start(self, total: int) -> None:
        self.total = total
        if self.tty and total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("Verifying connections"),
                BarColumn(),
                MofNCompleteColumn(),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("checks", total=total)

    def __call__(self, r: Any) -> None:
        key = getattr(r.key, "address", r.key)
        line = (
            f"  check {key}: {r.message} ({r.response_ms} ms)"
            if r.status == "healthy"
            else f"  check {key}: {r.failure_type}: {r.message}"
        )
        if self._progress is not None:
            self._progress.advance(self._task)
            if r.status != "healthy":
                self._progress.console.print(line, markup=False, highlight=False)
        else:
            click.echo(line)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@cli.command()
@catalog_option
@paths_argument
@with_orgs
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Apply exactly this saved plan (refused if stale).",
)
@click.option(
    "--actor", default=None, help="Who is applying (default: RECONCILER_ACTOR, the user)."
)
@click.option(
    "--parallelism", type=click.IntRange(1, 1000), default=10, help="Concurrent health checks."
)
@click.option(
    "--max-deletions",
    type=click.IntRange(0),
    default=None,
    help="Refuse a plan that deletes more than N connections.",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(0),
    default=30.0,
    help="Seconds to wait for an organization's lock.",
)
@handled
def apply(
    catalog_dir: str | None,
    paths: tuple[str, ...],
    orgs: tuple[str, ...],
    exclude_orgs: tuple[str, ...],
    shard: str | None,
    providers: tuple[str, ...],
    plan_file: str | None,
    actor: str | None,
    parallelism: int,
    max_deletions: int | None,
    lock_timeout: float,
) -> None:
    """Make it so: create, update and tear down connections; check every new credential."""
    from reconciler.commands.inputs import actor_name
    from reconciler.commands.run import make_plan, replan_after_schema, run_apply
    from reconciler.commands.saved import load_saved_plan
    from reconciler.core.render import render_text, summary_line

    selection = _selection(orgs, exclude_orgs, shard, providers)
    if plan_file:
        planned = load_saved_plan(Path(plan_file), catalog_dir, os.environ)
    else:
        planned = make_plan(catalog_dir, paths, os.environ, selection)
        if not planned.observed.exists:
            from reconciler.db.engine import database_url, ensure_schema, make_engine

            ensure_schema(make_engine(database_url(os.environ)))
            planned = replan_after_schema(planned, os.environ)
    if not planned.plan.has_changes:
        click.echo(summary_line(planned.plan))
        return
    deletions = len(planned.plan.deletions())
    if max_deletions is not None and deletions > max_deletions:
        raise ReconcilerError(
            f"the plan deletes {deletions} connection(s), more than --max-deletions "
            f"{max_deletions}; nothing was written. Review the plan, then raise the limit."
        )
    click.echo(render_text(planned.plan, overrides=planned.overrides), nl=False)
    click.echo("")
    progress = CheckProgress()
    try:
        report = run_apply(
            planned,
            os.environ,
            actor=actor_name(actor, os.environ),
            parallelism=parallelism,
            on_check=progress,
            on_start=progress.start,
            method="apply --plan" if plan_file else "apply",
            lock_timeout=lock_timeout,
        )
    finally:
        progress.close()
    for o in report.outcomes:
        mark = "ERROR" if o.failed else o.result
        click.echo(f"{o.address}: {mark}: {o.message}")
    counts: dict[str, int] = {}
    for o in report.outcomes:
        counts[o.result] = counts.get(o.result, 0) + 1
    parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    if report.failed:
        click.echo(f"Apply finished with errors: {parts}.", err=True)
        for o in report.failed:
            click.echo(f"Error: {o.address}: {o.message}", err=True)
        sys.exit(1)
    click.echo(f"Apply complete: {parts}.")


@cli.command()
@catalog_option
@with_orgs
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--actor", default=None)
@click.option("--parallelism", type=click.IntRange(1, 1000), default=10)
@handled
def health(
    catalog_dir: str | None,
    orgs: tuple[str, ...],
    exclude_orgs: tuple[str, ...],
    shard: str | None,
    providers: tuple[str, ...],
    fmt: str,
    actor: str | None,
    parallelism: int,
) -> None:
    """Re-check existing connections and record the results."""
    from reconciler.commands.healthcmd import run_health
    from reconciler.commands.inputs import actor_name

    progress = CheckProgress()
    try:
        results = run_health(
            catalog_dir,
            os.environ,
            _selection(orgs, exclude_orgs, shard),
            providers=providers,
            actor=actor_name(actor, os.environ),
            parallelism=parallelism,
            on_check=None if fmt == "json" else progress,
            on_start=None if fmt == "json" else progress.start,
        )
    finally:
        progress.close()
    if fmt == "json":
        click.echo(json.dumps([r for r in results], indent=2, sort_keys=True, default=str))
    bad = [r for r in results if r["status"] != "healthy"]
    if fmt == "text":
        click.echo(f"{len(results) - len(bad)} healthy, {len(bad)} unhealthy.")
    if bad:
        sys.exit(1)


@cli.command()
@catalog_option
@with_orgs
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handled
def status(
    catalog_dir: str | None,
    orgs: tuple[str, ...],
    exclude_orgs: tuple[str, ...],
    shard: str | None,
    providers: tuple[str, ...],
    fmt: str,
) -> None:
    """The "Connected Apps" view: instances, connections, resources and health."""
    from reconciler.commands.views import status_json, status_text

    sel = _selection(orgs, exclude_orgs, shard, providers)
    if fmt == "json":
        click.echo(json.dumps(status_json(catalog_dir, os.environ, sel), indent=2, sort_keys=True))
    else:
        click.echo(status_text(catalog_dir, os.environ, sel), nl=False)


@cli.command(name="catalog")
@catalog_option
@click.option("--category", default=None, help="Only providers of this category.")
@click.option("--search", "query", default=None, help="Match name, display name or description.")
@click.argument("query_arg", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@handled
def catalog_cmd(
    catalog_dir: str | None,
    category: str | None,
    query: str | None,
    query_arg: str | None,
    fmt: str,
) -> None:
    """Browse providers: search, filter by category."""
    from reconciler.commands.views import catalog_json, catalog_text

    q = query or query_arg
    if fmt == "json":
        click.echo(json.dumps(catalog_json(catalog_dir, category, q), indent=2, sort_keys=True))
    else:
        click.echo(catalog_text(catalog_dir, category, q), nl=False)


@cli.group(invoke_without_command=True)
@click.option("--org", "orgs", multiple=True)
@click.option("--action", "actions", multiple=True)
@click.option("--since", default=None, help="ISO date or time, e.g. 2026-11-01.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
@handled
def audit(
    ctx: click.Context, orgs: tuple[str, ...], actions: tuple[str, ...], since: str | None, fmt: str
) -> None:
    """List audit entries (see also: audit verify, audit head)."""
    if ctx.invoked_subcommand is not None:
        return
    from reconciler.commands.auditcmd import list_entries

    click.echo(list_entries(os.environ, orgs=orgs, actions=actions, since=since, fmt=fmt), nl=False)


@audit.command(name="verify")
@click.option("--expect-head", default=None, help="A head printed earlier by `audit head`.")
@handled
def audit_verify(expect_head: str | None) -> None:
    """Detect tampering: modified, deleted, reordered or inserted entries."""
    from reconciler.commands.auditcmd import verify_chain

    ok, message = verify_chain(os.environ, expect_head)
    click.echo(message, err=not ok)
    if not ok:
        sys.exit(1)


@audit.command(name="head")
@handled
def audit_head() -> None:
    """Print the current head of the audit chain, to keep outside the database."""
    from reconciler.commands.auditcmd import head

    click.echo(head(os.environ))


@cli.group()
def keys() -> None:
    """Encryption keys: generate an entry, count credentials per key, rotate."""


@keys.command(name="generate")
@click.option("--key-id", default=None)
@handled
def keys_generate(key_id: str | None) -> None:
    """Print a new KEY_ID:BASE64 entry for RECONCILER_ENCRYPTION_KEYS."""
    from reconciler.crypto import generate_entry

    click.echo(generate_entry(key_id))


@keys.command(name="status")
@handled
def keys_status() -> None:
    """How many credentials each key id protects."""
    from reconciler.commands.keyscmd import key_status

    click.echo(key_status(os.environ), nl=False)


@keys.command(name="rotate")
@click.option("--actor", default=None)
@handled
def keys_rotate(actor: str | None) -> None:
    """Re-encrypt every credential under the first key, in one transaction."""
    from reconciler.commands.inputs import actor_name
    from reconciler.commands.keyscmd import rotate

    click.echo(rotate(os.environ, actor_name(actor, os.environ)))


@cli.group()
def db() -> None:
    """Database schema."""


@db.command(name="upgrade")
@handled
def db_upgrade() -> None:
    """Create or migrate the schema."""
    from reconciler.db.engine import database_url, ensure_schema, make_engine

    ensure_schema(make_engine(database_url(os.environ)))
    click.echo("The database schema is up to date.")


@cli.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", type=int, default=8765)
@click.option("--latency-ms", type=float, default=0.0)
@click.option("--failure-rate", type=click.FloatRange(0, 1), default=0.0)
@handled
def simulate(host: str, port: int, latency_ms: float, failure_rate: float) -> None:
    """Run the local provider simulator (demo, tests, staging)."""
    from reconciler.simulator import run

    run(host, port, latency_ms=latency_ms, failure_rate=failure_rate)


@cli.command()
@catalog_option
@click.option("--out", "out", type=click.Path(file_okay=False), required=True)
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False, exists=True), default=None)
@handled
def report(catalog_dir: str | None, out: str, plan_file: str | None) -> None:
    """Write the static HTML report."""
    from reconciler.report import write_report

    written = write_report(Path(out), catalog_dir, os.environ, plan_file=plan_file)
    folder = Path(out)
    click.echo(f"Wrote {len(written)} page(s) to {folder} (open {folder / 'index.html'}).")


def main(argv: Sequence[str] | None = None) -> None:
    # the objects made while importing live as long as the process: keeping the collector
    # from scanning them again and again saves ~10% of a big plan
    gc.freeze()
    cli.main(args=list(argv) if argv is not None else None, prog_name="reconciler")


if __name__ == "__main__":  # pragma: no cover
    main()
