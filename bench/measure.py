"""Measuring one command as a child process: wall time, CPU time, peak memory, statements.

Each command runs as its own process (``python bench/counted.py ARGS``, which is
``python -m reconciler ARGS`` plus a statement counter), so its costs are its own: ``os.wait4``
returns the rusage of exactly that child (``RUSAGE_CHILDREN`` keeps the maximum over all
children ever waited for). Peak memory is the child's own ``VmHWM``, reported by the child
itself, because Linux starts a child's ``ru_maxrss`` at the parent's resident size (this
process holds the simulator); ``ru_maxrss`` is the fallback with ``--no-count``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
COUNTED = BENCH / "counted.py"
FLOOR = BENCH / "floor.py"


@dataclass
class Measurement:
    """What one child process cost. ``statements`` is None when it was not counted."""

    wall_s: float
    cpu_s: float
    max_rss_mb: float
    exit_code: int
    statements: dict[str, int] | None = None
    output: Path | None = None
    timed_out: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def run_child(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path,
    output: Path,
    timeout: float,
) -> Measurement:
    """Run ``argv`` with stdout and stderr to ``output`` (a file: plans of 1,000 organizations
    are long), killing it after ``timeout`` seconds."""
    with output.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measurement(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,  # kilobytes on Linux
        exit_code=proc.returncode,
        output=output,
        timed_out=timed_out.is_set(),
    )


def run_reconciler(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    workdir: Path,
    label: str,
    timeout: float,
    count_statements: bool = True,
    profile_dir: Path | None = None,
) -> Measurement:
    """One ``reconciler`` command, measured; its output is kept in ``workdir/label.out``.

    With ``profile_dir`` it runs under pyinstrument and leaves ``label.txt`` and ``label.html``
    there (the times are then the profiler's, not the product's)."""
    counts = workdir / f"{label}.statements.json"
    counts.unlink(missing_ok=True)
    child_env = {**env, "BENCH_STATEMENTS_FILE": str(counts)}
    entry = [str(COUNTED)] if count_statements else ["-m", "reconciler"]
    if profile_dir is not None:
        session = profile_dir / f"{label}.pyisession"
        entry = ["-m", "pyinstrument", "--renderer", "session", "-o", str(session), str(COUNTED)]
    m = run_child(
        [sys.executable, *entry, *args],
        child_env,
        cwd=workdir,
        output=workdir / f"{label}.out",
        timeout=timeout,
    )
    if count_statements and counts.exists():
        reported = json.loads(counts.read_text(encoding="utf-8"))
        m.statements = reported["statements"]
        _own_peak(m, reported.get("peak_rss_kb"))
    if profile_dir is not None:
        _render_profile(profile_dir / f"{label}.pyisession", timeout)
    return m


def _render_profile(session: Path, timeout: float) -> None:
    """Text (call tree, 2% and up) and HTML renderings of a saved pyinstrument session."""
    if not session.exists():
        return
    for renderer, suffix in (("text", ".txt"), ("html", ".html")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pyinstrument",
                "--load",
                str(session),
                "--renderer",
                renderer,
                "-o",
                str(session.with_suffix(suffix)),
            ],
            check=False,
            timeout=timeout,
            capture_output=True,
        )


def run_floor(
    manifests: Path,
    db_url: str | None,
    env: Mapping[str, str],
    *,
    workdir: Path,
    label: str,
    parts: str = "parse,read,hmac",
    repeat: int = 3,
    timeout: float = 600,
) -> Measurement:
    """The floor for the same state, as a process like the command's; the fastest of
    ``repeat`` runs (the floor is a lower bound, so noise should not raise it)."""
    best: Measurement | None = None
    for i in range(max(1, repeat)):
        out_json = workdir / f"{label}.floor.json"
        argv = [sys.executable, str(FLOOR), "--manifests", str(manifests), "--parts", parts]
        argv += ["--json", str(out_json)]
        if db_url:
            argv += ["--db-url", db_url]
        m = run_child(
            argv, env, cwd=workdir, output=workdir / f"{label}.floor{i}.out", timeout=timeout
        )
        if m.exit_code != 0:
            raise RuntimeError(f"the floor failed (exit {m.exit_code}); see {m.output}")
        m.extra = json.loads(out_json.read_text(encoding="utf-8"))
        _own_peak(m, m.extra.get("peak_rss_kb"))
        if best is None or m.wall_s < best.wall_s:
            best = m
    assert best is not None
    return best


def _own_peak(m: Measurement, peak_kb: int | None) -> None:
    """Prefer the peak the child measured itself: ``ru_maxrss`` of a child starts from the
    parent's resident size at fork (Linux carries it over exec), so it is only an upper
    bound."""
    if peak_kb:
        m.extra["ru_maxrss_mb"] = m.max_rss_mb
        m.max_rss_mb = peak_kb / 1024


def summary_of(output: Path) -> str:
    """The line a user reads last: the plan's or apply's summary, or the first error."""
    lines = output.read_text(encoding="utf-8", errors="replace").splitlines()
    prefixes = ("Plan:", "No changes", "Apply complete", "Apply finished", "Valid:")
    health = re.compile(r"^\d+ healthy, \d+ unhealthy\.$")
    for line in reversed(lines):
        if line.startswith(prefixes) or health.match(line.strip()):
            return line.strip()
    for line in lines:
        if line.startswith(("Error", "An unexpected")):
            return line.strip()
    return lines[-1].strip() if lines else ""
