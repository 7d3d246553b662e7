"""Finished health checks as they come back: a progress bar on a terminal, one line per check
in a pipeline (``apply`` and ``health``)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

FLUSH_EVERY_S = 0.2


class CheckProgress:
    """Call it with each finished check; ``start(total)`` once the number is known. Use it as
    a context manager so the bar is taken down even when the command fails."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = sys.stdout.isatty()
        self.total: int | None = None
        self._progress: Any = None
        self._task: Any = None
        self._flushed = 0.0

    def __enter__(self) -> CheckProgress:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def on_check(self) -> CheckProgress | None:
        return self if self.enabled else None

    @property
    def on_start(self) -> Any:
        return self.start if self.enabled else None

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
            # a pipeline's log: written as it comes, flushed a few times a second (click.echo
            # flushes every line, which costs more than the check at thousands of them)
            out = sys.stdout
            out.write(line + "\n")
            now = time.monotonic()
            if now - self._flushed >= FLUSH_EVERY_S:
                out.flush()
                self._flushed = now

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        elif self.enabled:
            sys.stdout.flush()
