"""The command line: declarations and wiring. Parse, call, render, exit code.

Each command returns its exit code (0 success, 1 error, 2 ``plan --detailed-exitcode`` with
changes, 3 unexpected error); ``main(argv)`` returns it, so tests can call it. The work is in
``reconciler.commands``; errors become messages in one place (``commands.error_handler``).
The commands are declared by area: ``review`` (validate, import, schema, plan, apply),
``operate`` (health, status, catalog, notify, metrics, report) and ``admin`` (audit, keys,
db, simulate), all on the one group of ``group``.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence

# Importing the commands (click, SQLAlchemy, ...) makes some 300,000 objects that live as long
# as the process, and next to no garbage: the collector does not scan them while they are
# made (125 passes, 0.05 s of a no-op plan), and they are frozen once made.
_collecting = gc.isenabled()
gc.disable()
try:
    import click

    from reconciler.cli import admin, operate, review  # noqa: F401  (they register the commands)
    from reconciler.cli.group import cli
    from reconciler.commands.error_handler import EXIT_ERROR, EXIT_OK
finally:
    gc.freeze()
    if _collecting:
        gc.enable()

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (``reconciler`` exits with it)."""
    # the objects made while importing live as long as the process: keeping the collector
    # from scanning them again and again saves ~10% of a big plan; and a plan of thousands of
    # connections allocates its records by the hundred thousand, nearly none in cycles: the
    # youngest generation is collected every 50,000 allocations instead of every 700
    gc.freeze()
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
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
