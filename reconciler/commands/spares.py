"""Worker processes of ``apply --workers`` started before their jobs exist.

A worker's imports (SQLAlchemy, the HTTP stack, our modules) take it half a second to a second
of CPU. Started when its job is ready, after the plan, it begins writing that much later than
this process, and its share of the organizations ends that much later. But the plan's
database side is known well before the plan is done: the provider side is still being read
(SPEC section 8) and, on a new database, the schema is still to be made. So as soon as the
database side has changes in enough organizations for more than one process (``on_changes``,
``make_plan``'s hook), the workers are started; they import while the plan finishes, on the
core this process leaves idle, and wait for their jobs. ``apply_in_workers`` takes them
(``take``); those it does not take (the final plan needed fewer) are ended by ``close``: their
stdin closes before any job, and they exit having written nothing. A plan without changes
starts none.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from reconciler.commands.channel import Child, start_child, turn_file
from reconciler.core.changes import Plan

log = logging.getLogger("reconciler.workers")

ENDED_WITHIN_S = 10.0  # a spare told to stop exits at once; past this it is killed


@dataclass
class Ready:
    """The workers started early, and the file of their SQLite write turns (None on
    PostgreSQL), which they hold open from their start."""

    children: list[Child]
    turn: IO[bytes] | None


class Spares:
    """Workers started while the plan is made (see the module's docstring)."""

    def __init__(self, requested: int | None, parallelism: int, environ: Mapping[str, str]):
        self.requested, self.parallelism, self.environ = requested, parallelism, environ
        self._ready: Ready | None = None
        self._asked = False
        self._files = contextlib.ExitStack()

    def on_changes(self, plan: Plan) -> None:
        """The database side of the plan is known: start the workers it will need, once."""
        from reconciler.commands.workers import number_of_workers

        if self._asked:
            return
        self._asked = True
        organizations = len({c.organization for c in plan.changes})
        workers = number_of_workers(self.requested, organizations, self.parallelism)
        if workers < 2:
            return
        turn = self._files.enter_context(turn_file(self.environ))
        fds = (turn.fileno(),) if turn is not None else ()
        children = [start_child(i, None, 0, fds) for i in range(1, workers)]
        self._ready = Ready(children, turn)
        log.debug("started %d worker(s) while the plan is made", len(children))

    def take(self) -> Ready | None:
        """The workers started early (None: none were), for ``apply_in_workers``; it uses
        what it needs and ``close`` ends the rest."""
        return self._ready

    def close(self) -> None:
        """End the workers not given a job, and close the turn file."""
        ready, self._ready = self._ready, None
        idle = [c for c in (ready.children if ready is not None else []) if c.thread is None]
        for c in idle:
            with contextlib.suppress(OSError):
                c.send.close()  # no job: it exits
        for c in idle:
            try:
                c.proc.wait(timeout=ENDED_WITHIN_S)
            except subprocess.TimeoutExpired:
                c.proc.kill()
                c.proc.wait()
            with contextlib.suppress(OSError):
                c.receive.close()
        self._files.close()
