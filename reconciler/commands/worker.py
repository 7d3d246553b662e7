"""A worker process of ``apply --workers N`` / ``health --workers N``:
started by ``reconciler.commands.workers`` (``-c`` bootstrap calling ``main``).

It reads one job from stdin (pickled: the plan's changes and observed rows of its
organizations, or a health selection; never a secret: those it reads from the environment it
inherited, as the coordinator did), sends progress, log records and one result or error to
stdout, and ends. Anything else written to stdout goes to stderr instead. When its stdin
closes before it is done (the coordinator was killed or interrupted) it stops as on Ctrl-C:
after the organization it is writing, which is one transaction.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from importlib import import_module
from multiprocessing.connection import Connection
from typing import Any


class _Forward(logging.Handler):
    """Log records go to the coordinator, which writes them where its own go."""

    def __init__(self, send: Any) -> None:
        super().__init__()
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # the coordinator is gone: nothing to log to
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            self.send(("log", record.name, record.levelno, message, record.created))


class Channel:
    def __init__(self) -> None:
        self.receive = Connection(os.dup(0), writable=False)
        self.out = Connection(os.dup(1), readable=False)
        self.lock = threading.Lock()
        self.finished = False
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(2, 1)  # a stray print must not corrupt the frames

    def send(self, frame: tuple[Any, ...]) -> None:
        with self.lock:
            self.out.send(frame)

    def watch(self) -> None:
        """Stop (as on Ctrl-C) when the coordinator closes our stdin before we are done."""
        with contextlib.suppress(EOFError, OSError):
            self.receive.recv()
        if not self.finished:
            os.kill(os.getpid(), signal.SIGINT)


def _logging(channel: Channel, verbose: bool) -> None:
    from reconciler.commands.logs import QUIET

    level = logging.DEBUG if verbose else logging.WARNING
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(_Forward(channel.send))
    root.setLevel(level)
    logging.getLogger("reconciler").setLevel(level)
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _on_check(channel: Channel) -> Any:
    from reconciler.commands.channel import check_view

    def on_check(r: Any) -> None:
        v = check_view(r)
        channel.send(("check", v.key, v.status, v.message, v.failure_type, v.response_ms))

    return on_check


def run_job(job: Mapping[str, Any], channel: Channel, environ: Mapping[str, str]) -> Any:
    from reconciler.commands.channel import WriteTurn
    from reconciler.health.limits import share_among

    share_among(job.get("processes", 1))  # the keys' limits are shared with the other workers
    on_start = lambda n: channel.send(("start", n))  # noqa: E731
    fd = job.get("write_turn_fd")
    turn = WriteTurn(fd) if fd is not None else None
    if job["command"] == "apply":
        from reconciler.commands.inputs import keyring
        from reconciler.commands.run import Planned, run_apply
        from reconciler.core.secret import Secret

        plan = job["plan"]
        secrets = {v: Secret(environ[v], v) for v in plan.variables() if v in environ}
        planned = Planned(
            plan,
            job["catalog"],
            job["observed"],
            keyring(environ),
            {},
            {},
            secrets,
            {},
            job["git_commit"],
            down=job.get("down", frozenset()),
            checked=job.get("checked", {}),
        )
        report = run_apply(
            planned,
            environ,
            actor=job["actor"],
            parallelism=job["parallelism"],
            on_check=_on_check(channel),
            on_start=on_start,
            method=job["method"],
            lock_timeout=job["lock_timeout"],
            write_turn=turn,
            processes=job.get("processes", 1),
        )
        return report.outcomes
    if job["command"] == "health":
        from reconciler.commands.healthcmd import run_health

        order: list[Any] = []
        rows = run_health(
            job["catalog_dir"],
            environ,
            job["selection"],
            providers=job["providers"],
            actor=job["actor"],
            parallelism=job["parallelism"],
            on_check=_on_check(channel),
            on_start=on_start,
            order=order,
            write_turn=turn,
        )
        return list(zip(order, rows, strict=True))
    raise ValueError(f"unknown job {job['command']!r}")


def _interrupt_once() -> None:
    """The first SIGINT stops the work as Ctrl-C does (the organization being written is
    finished); later ones (the terminal's and the coordinator's, or a closed stdin) do not
    interrupt that."""
    stopping = False

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)


def _ready() -> None:
    """Import what an apply job runs while its job is still being planned (a worker started
    early, ``spares``), with the collector off as the CLI imports."""
    from reconciler.commands.frozen_imports import frozen_imports

    with frozen_imports():
        for module in ("reconciler.apply", "reconciler.commands.run"):  # the HTTP stack too
            import_module(module)


def main() -> int:
    _interrupt_once()
    channel = Channel()
    try:
        _ready()
        job = channel.receive.recv()
    except (EOFError, OSError):  # no job: the coordinator ended or did not need us
        return 1
    except KeyboardInterrupt:  # Ctrl-C before any work: nothing to finish
        return 130
    _logging(channel, bool(job.get("verbose")))
    threading.Thread(target=channel.watch, name="reconciler-parent", daemon=True).start()
    log = logging.getLogger("reconciler.workers")
    try:
        result = run_job(job, channel, os.environ)
        channel.finished = True
        channel.send(("result", result))
        return 0
    except BaseException as e:
        channel.finished = True
        from reconciler.commands.channel import encode_error

        log.debug("worker %d: %s", os.getpid(), type(e).__name__, exc_info=True)
        with contextlib.suppress(OSError):
            channel.send(("error", encode_error(e)))
        return 130 if isinstance(e, KeyboardInterrupt) else 1
    finally:
        from reconciler.db.engine import dispose_all

        dispose_all()


if __name__ == "__main__":
    sys.exit(main())
