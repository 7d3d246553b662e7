"""Run the ``reconciler`` command line with a count of the SQL statements it sends.

``python bench/counted.py plan DIR`` is ``python -m reconciler plan DIR`` plus one listener on
SQLAlchemy's ``Engine`` class (so every engine the product makes is counted, in this process).
The counts go as JSON to the file named by ``BENCH_STATEMENTS_FILE`` when the command ends,
whatever its exit code, with the process's own peak memory (``VmHWM``: unlike ``ru_maxrss``,
it does not start from the parent's size at fork). The listener costs one Python call per
statement.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

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


def main() -> None:
    event.listen(Engine, "before_cursor_execute", _count)
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
