"""Logging for one command: stderr, and a file with ``--log-file``; debug with ``--verbose``.

Both options are accepted before and after the command name, so each records its value here
and reconfigures."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

_SETTINGS: dict[str, Any] = {"verbose": False, "log_file": None}
# the HTTP stack logs URLs (some carry a key in the query string) and headers: keep it quiet
QUIET = ("httpx", "httpcore", "hpack", "sqlalchemy.engine", "urllib3")


def set_option(name: str, value: Any) -> None:
    """Record ``--verbose`` or ``--log-file`` given after the command name."""
    if value:
        _SETTINGS[name] = value
        configure_logging(_SETTINGS["verbose"], _SETTINGS["log_file"])


def configure_logging(verbose: bool, log_file: str | None) -> None:
    _SETTINGS.update(verbose=verbose, log_file=log_file)
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
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _option_callback(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        set_option(name, value)

    return callback


def logging_options(fn: F) -> F:
    """``--verbose`` and ``--log-file`` after a command's name (the group takes them before)."""
    fn = click.option(
        "--log-file",
        type=click.Path(dir_okay=False),
        expose_value=False,
        callback=_option_callback("log_file"),
        help="Also write the log to this file.",
    )(fn)
    return click.option(
        "--verbose",
        is_flag=True,
        expose_value=False,
        callback=_option_callback("verbose"),
        help="Debug output (as free of secrets as the rest).",
    )(fn)
