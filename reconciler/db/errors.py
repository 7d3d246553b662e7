"""Database errors, translated where the database is called.

Every engine made by ``reconciler.db.engine`` turns a failure of the database (down, refused
us, not ours, a constraint) into ``DatabaseError``, a ``ReconcilerError``: the command stops
with a plain message and exit code 1. The message names the driver's error class and the first
line of its text; bound parameters (ciphertexts) are never part of it. Code that expects a
failure and handles it (a lock not obtained within its timeout) runs in ``untranslated()``
and sees SQLAlchemy's own exception.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError

from reconciler.core.errors import ReconcilerError

log = logging.getLogger("reconciler.db")
_UNTRANSLATED: ContextVar[bool] = ContextVar("reconciler_db_untranslated", default=False)


class DatabaseError(ReconcilerError):
    """The database failed; the message says how, without any bound value."""


@contextmanager
def untranslated() -> Iterator[None]:
    """Let SQLAlchemy's exceptions through, for code that handles them itself."""
    token = _UNTRANSLATED.set(True)
    try:
        yield
    finally:
        _UNTRANSLATED.reset(token)


def describe(error: DBAPIError) -> str:
    orig = error.orig
    text = str(orig).strip()
    first = text.splitlines()[0] if text else ""
    return (
        f"the database failed: {type(orig).__name__}: {first}. "
        "Check RECONCILER_DATABASE_URL and that the server is up."
    )


def translate(context: ExceptionContext) -> None:
    """The engines' ``handle_error`` hook: raise ``DatabaseError`` for a database failure.

    A failed pre-ping is left to the pool (it reconnects), and an error that is not the
    database's (a bug in a bound value) stays unexpected."""
    error = context.sqlalchemy_exception
    if context.is_pre_ping or _UNTRANSLATED.get() or not isinstance(error, DBAPIError):
        return
    log.debug("database error", exc_info=error)
    raise DatabaseError(describe(error)) from None
