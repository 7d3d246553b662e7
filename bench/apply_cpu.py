"""The CPU of one first ``apply`` per connection, for profiling it (issue 16, item 2).

Writes a fleet of N organizations once (``--no-resources``: connections only), starts the
bundled simulator in this process at ``--latency-ms`` of latency, and runs ``python -m
reconciler apply --parallelism P --workers W FLEET`` (W = 1 unless ``--workers``) as a child on a
fresh SQLite database (``--pg-url``: a fresh PostgreSQL one) ``--repeat`` times, printing each
run's CPU seconds (the child's rusage: user + system) and CPU per connection, then the minimum
and the median. With ``--py-spy OUT`` the child runs under py-spy (all threads; ``--gil``: only the
thread holding the GIL, which is the closest py-spy comes to CPU time, since its "running"
heuristic counts some waits in epoll and fsync), leaving collapsed stacks in OUT (``-f raw``),
summarized by subsystem (the innermost frame that names one) and by leaf function; the CPU
then includes py-spy's pauses of the child, so only the shares mean anything.

    python bench/apply_cpu.py --orgs 200 --repeat 3
    python bench/apply_cpu.py --orgs 200 --gil --py-spy /tmp/apply.txt
    python bench/apply_cpu.py --summarize /tmp/apply.txt
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `reconciler` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet import generate_fleet, workspace_numbers
from bench.measure import REPO
from bench.run import allow_large_environment, base_environment, pg_database

PY_SPY = "/work/main/.venv/bin/py-spy"

# Subsystems by the first frame (innermost wins: checked from the leaf up) that names them.
SUBSYSTEMS: tuple[tuple[str, str], ...] = (
    ("imports", "<frozen importlib._bootstrap"),
    ("encryption", "reconciler/crypto/"),
    ("encryption", "cryptography/"),
    ("audit", "reconciler/audit.py"),
    ("sqlalchemy", "sqlalchemy/"),
    ("sqlite3", "sqlite3/"),
    ("health (ours)", "reconciler/health/"),
    ("aiohttp", "aiohttp/"),
    ("aiohttp", "multidict/"),
    ("aiohttp", "yarl/"),
    ("httpx/httpcore", "httpx/"),
    ("httpx/httpcore", "httpcore/"),
    ("h11", "h11/"),
    ("ssl/socket", "ssl.py"),
    ("providers", "reconciler/providers/"),
    ("manifest/yaml", "yaml/"),
    ("manifest/yaml", "pydantic"),
    ("manifest/yaml", "reconciler/core/manifest"),
    ("planning", "reconciler/core/"),
    ("db (ours)", "reconciler/db/"),
    ("apply (ours)", "reconciler/apply/"),
    ("commands/cli", "reconciler/commands/"),
    ("commands/cli", "reconciler/cli/"),
    ("rich/click", "rich/"),
    ("rich/click", "click/"),
    ("asyncio", "asyncio/"),
    ("threading", "threading.py"),
    ("logging", "logging/"),
)


def run_apply(
    fleet_folder: Path, env: dict[str, str], workdir: Path, opts: argparse.Namespace, i: int
) -> float:
    with contextlib.ExitStack() as stack:
        if opts.pg_url:
            url = stack.enter_context(pg_database(opts.pg_url))
        else:
            db = workdir / f"apply-{i}.db"
            db.unlink(missing_ok=True)
            url = f"sqlite:///{db}"
        return _run_apply(fleet_folder, {**env, "RECONCILER_DATABASE_URL": url}, workdir, opts, i)


def _run_apply(
    fleet_folder: Path, child_env: dict[str, str], workdir: Path, opts: argparse.Namespace, i: int
) -> float:
    argv = [sys.executable, "-m", "reconciler", "apply", "--parallelism", str(opts.parallelism)]
    argv += ["--workers", str(opts.workers), str(fleet_folder)]
    if opts.py_spy:
        # without --idle: py-spy then samples only threads that are running, which is the CPU
        argv = [PY_SPY, "record", "--threads", "-r", str(opts.rate)]
        if opts.gil:  # only the thread holding the GIL: Python's own CPU, no waits
            argv.append("--gil")
        argv += ["-f", "raw", "-o", str(opts.py_spy), "--", sys.executable, "-m", "reconciler"]
        argv += ["apply", "--parallelism", str(opts.parallelism), "--workers", str(opts.workers)]
        argv += [str(fleet_folder)]
    out = workdir / f"apply-{i}.out"
    with out.open("wb") as f:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=child_env, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    text = out.read_text(encoding="utf-8", errors="replace")
    if code != 0 or "Apply complete" not in text:
        sys.exit(f"apply failed (exit {code}); see {out}:\n{text[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    print(
        f"  run {i}: cpu {cpu:6.2f} s (user {usage.ru_utime:.2f}, system {usage.ru_stime:.2f})"
        f"  wall {wall:6.2f} s",
        flush=True,
    )
    return cpu


def summarize(path: Path, top: int = 40) -> None:
    """Shares per subsystem and the heaviest leaf functions of py-spy's collapsed stacks."""
    by_system: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        by_system[_system(frames)] += n
        leaves[frames[-1]] += n
    print(f"{total} samples")
    for name, n in by_system.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("heaviest leaves:")
    for name, n in leaves.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {name}")


def _system(frames: Sequence[str]) -> str:
    if any("_bootstrap" in f and "importlib" in f for f in frames):
        return "imports"
    for frame in reversed(frames):
        for name, marker in SUBSYSTEMS:
            if marker in frame:
                return name
    return "other"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orgs", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--parallelism", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="apply --workers (CPU of all).")
    ap.add_argument("--py-spy", type=Path, default=None, help="Collapsed stacks go here.")
    ap.add_argument("--gil", action="store_true", help="py-spy --gil: GIL holders only.")
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second.")
    ap.add_argument("--summarize", type=Path, default=None, help="Summarize collapsed stacks.")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument(
        "--pg-url", default=None, help="Apply to a fresh database on this PostgreSQL server."
    )
    ap.add_argument(
        "--no-resources", action="store_true", help="Connections only, no provider-side objects."
    )
    opts = ap.parse_args(argv)
    if opts.summarize:
        summarize(opts.summarize)
        return 0
    allow_large_environment(opts.orgs)
    root = opts.workdir or Path(tempfile.mkdtemp(prefix="reconciler-apply-cpu-"))
    from reconciler.simulator import Simulator

    fleet = generate_fleet(root / f"fleet-{opts.orgs}", opts.orgs, resources=not opts.no_resources)
    cpus = []
    with Simulator(latency_ms=opts.latency_ms) as sim:
        env = {**base_environment(sim.env()), **fleet.secrets}
        for i in range(opts.repeat):
            sim.reset()
            workspace_numbers(fleet, sim)
            before = sim.request_count()
            cpus.append(run_apply(fleet.folder, env, root, opts, i))
            print(f"    {sim.request_count() - before} requests to the simulator", flush=True)
    conns = fleet.connections
    lo, med = min(cpus), statistics.median(cpus)
    print(
        f"N={opts.orgs} ({conns} connections): cpu min {lo:.2f} s median {med:.2f} s; "
        f"per connection min {1000 * lo / conns:.2f} ms median {1000 * med / conns:.2f} ms"
    )
    if opts.py_spy:
        summarize(opts.py_spy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
