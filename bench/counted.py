"""Run the ``reconciler`` command line with a count of the SQL statements it sends.

``python bench/counted.py plan DIR`` is ``python -m reconciler plan DIR`` plus one listener on
SQLAlchemy's ``Engine`` class (so every engine the product makes is counted, in this process).
The listener is added when the product imports SQLAlchemy, not before: importing it here first
would move that import before the product's own start (``commands.parse_ahead`` forks before
it), and time a command that users do not run.
The counts go as JSON to the file named by ``BENCH_STATEMENTS_FILE`` when the command ends,
whatever its exit code, with the process's own peak memory (``VmHWM``: unlike ``ru_maxrss``,
it does not start from the parent's size at fork). The listener costs one Python call per
statement.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from types import ModuleType
from typing import Any

COUNTS: Counter[str] = Counter()


def _count(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
    COUNTS[verb] += 1
    COUNTS["total"] += 1
    if executemany:
        COUNTS["executemany"] += 1


def peak_rss_kb() -> int | None:
    """This process's peak resident memory since exec, from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class _ListenOnImport(importlib.abc.MetaPathFinder):
    """Finds ``sqlalchemy`` as the usual finders do, and adds the listener once it is loaded."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "sqlalchemy":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        load = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            load(module)
            from sqlalchemy import event
            from sqlalchemy.engine import Engine

            event.listen(Engine, "before_cursor_execute", _count)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def main() -> None:
    sys.meta_path.insert(0, _ListenOnImport())
    from reconciler.cli import main as cli_main

    try:
        cli_main(sys.argv[1:])
    finally:
        out = os.environ.get("BENCH_STATEMENTS_FILE")
        if out:
            with open(out, "w", encoding="utf-8") as f:
                json.dump({"statements": dict(COUNTS), "peak_rss_kb": peak_rss_kb()}, f)


if __name__ == "__main__":
    main()
