"""The one error boundary: what a failed command prints and its exit code.

- ``InputError``: every diagnostic, then how many problems; exit 1.
- any other ``ReconcilerError`` (a stale plan, a lock not obtained, the database failed:
  ``reconciler.db.errors.DatabaseError``): ``Error: message``; exit 1.
- anything else is a bug: one line naming its type and pointing to ``--verbose``; exit 3. The
  traceback goes to the debug log only (``--verbose``, ``--log-file``); our secrets are
  ``Secret`` values there too, never formatted as plaintext.

Exit codes (README): 0 success, 1 error, 2 ``plan --detailed-exitcode`` with changes,
3 unexpected error.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import click

from reconciler.core.errors import InputError, ReconcilerError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_UNEXPECTED = 3

log = logging.getLogger("reconciler")


def report_error(error: Exception) -> int:
    """Print what the user needs to know about ``error``; return the exit code."""
    if isinstance(error, InputError):
        for d in error.diagnostics.items:
            click.echo(f"{'Error' if d.severity == 'error' else 'Warning'}: {d}", err=True)
        n = len(error.diagnostics.errors)
        click.echo(f"{n} problem{'s' if n != 1 else ''} found; nothing was written.", err=True)
        return EXIT_ERROR
    if isinstance(error, ReconcilerError):
        click.echo(f"Error: {error}", err=True)
        return EXIT_ERROR
    click.echo(
        f"An unexpected error has occurred: {type(error).__name__}. "
        "Run with --verbose for details.",
        err=True,
    )
    log.debug("unexpected error\n%s", "".join(traceback.format_exception(error)))
    return EXIT_UNEXPECTED


class ReconcilerGroup(click.Group):
    """The top-level group: the one error boundary, and a command's return value as its exit
    code (click alone would exit 0 whatever a command returns)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            code = super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as e:
            code = report_error(e)
        finally:
            if "reconciler.db.engine" in sys.modules:  # else the command opened no database
                from reconciler.db.engine import dispose_all

                dispose_all()
        if code:
            ctx.exit(code)
        return EXIT_OK
