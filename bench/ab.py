"""Alternating pairs of the same first apply from several checkouts (A/B on a noisy machine).

This machine kind's speed wanders: the CPU time of one and the same first apply ranged 13.5-18.4 s
within ten minutes (bench/RESULTS.md), so two single runs compare nothing. This runs a first
``apply`` of one fleet from each checkout in turn, ``--repeat`` times, each on a fresh database
(SQLite file, or ``--pg-url``: a fresh PostgreSQL database, whose server's CPU is read from
``/proc`` too) against the bundled simulator reset to the same state, and prints every run and
each checkout's minimum and median. A checkout is a folder holding ``reconciler/`` (a ``git
worktree add DIR COMMIT``); it runs through ``PYTHONPATH``, with its byte code compiled first.

    git worktree add /tmp/base 162ba06
    python bench/ab.py . /tmp/base --orgs 1000 --repeat 3
    python bench/ab.py . /tmp/base --orgs 1000 --pg-url postgresql://postgres@127.0.0.1:5432/test
    python bench/ab.py . /tmp/filed --step plan --no-resources --plain-plan --repeat 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `reconciler` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet import generate_fleet, workspace_numbers
from bench.run import allow_large_environment, base_environment, pg_database


def server_cpu() -> float:
    """CPU seconds of every ``postgres`` process on this machine (user and system, children
    included): the difference across a run is the server's share of it."""
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if "postgres" not in Path(f"/proc/{pid}/comm").read_text():
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += sum(int(x) for x in fields[11:15])
        except (OSError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkouts", nargs="+", type=Path)
    ap.add_argument("--orgs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--parallelism", type=int, default=50)
    ap.add_argument("--no-resources", action="store_true")
    ap.add_argument("--pg-url", default=None, help="PostgreSQL server (default: SQLite)")
    ap.add_argument(
        "--step",
        choices=("apply", "plan"),
        default="apply",
        help="apply: first applies, each on a fresh database; plan: no-op plans, each checkout"
        " of a database it applied once itself (an older checkout may not read a newer schema)",
    )
    ap.add_argument(
        "--plain-plan",
        action="store_true",
        help="plan without --parallelism (a checkout from before plans had it)",
    )
    opts = ap.parse_args(argv)
    from reconciler.simulator import Simulator

    allow_large_environment(opts.orgs)
    checkouts = [c.resolve() for c in opts.checkouts]
    for c in checkouts:
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(c / "reconciler")], check=True
        )
    runs: dict[Path, list[tuple[float, float, float]]] = {c: [] for c in checkouts}
    with (
        tempfile.TemporaryDirectory(prefix="reconciler-ab-") as tmp,
        Simulator(latency_ms=opts.latency_ms) as sim,
    ):
        work = Path(tmp)
        fleet = generate_fleet(
            work / "fleet", opts.orgs, git=False, resources=not opts.no_resources
        )
        env = {**base_environment(sim.env()), **fleet.secrets}
        with contextlib.ExitStack() as stack:
            applied: dict[Path, str] = {}
            if opts.step == "plan":  # a database per checkout, applied once by it, then planned
                for i, checkout in enumerate(checkouts):
                    sim.reset()
                    workspace_numbers(fleet, sim)
                    url = stack.enter_context(database(opts.pg_url, work, f"r{i}"))
                    done = _run(checkout, "apply", url, env, fleet.folder, work, opts)
                    if done.returncode != 0:
                        print(done.stdout[-2000:], done.stderr[-2000:], sep="\n")
                        return 1
                    applied[checkout] = url
            for _ in range(opts.repeat):
                for checkout in checkouts:
                    if not applied:
                        sim.reset()
                        workspace_numbers(fleet, sim)
                    with (
                        contextlib.nullcontext(applied[checkout])
                        if applied
                        else database(opts.pg_url, work)
                    ) as url:
                        before = resource.getrusage(resource.RUSAGE_CHILDREN)
                        server, started = server_cpu(), time.monotonic()
                        done = _run(checkout, opts.step, url, env, fleet.folder, work, opts)
                        wall = time.monotonic() - started
                        after = resource.getrusage(resource.RUSAGE_CHILDREN)
                        cpu = (after.ru_utime - before.ru_utime) + (
                            after.ru_stime - before.ru_stime
                        )
                        pg = server_cpu() - server if opts.pg_url else 0.0
                    runs[checkout].append((wall, cpu, pg))
                    print(
                        f"{checkout!s:<30} wall {wall:6.2f} s  cpu {cpu:6.2f} s"
                        + (f"  server {pg:5.2f} s" if opts.pg_url else "")
                        + f"  exit {done.returncode}  load {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
    print()
    first = statistics.median(r[0] for r in runs[checkouts[0]])
    for checkout, rows in runs.items():
        walls, cpus = [r[0] for r in rows], [r[1] for r in rows]
        print(
            f"{checkout!s:<30} wall min {min(walls):6.2f} median {statistics.median(walls):6.2f}"
            f"  cpu min {min(cpus):6.2f} median {statistics.median(cpus):6.2f}"
            f"  first/this (median wall) {first / statistics.median(walls):.2f}"
        )
    return 0


@contextlib.contextmanager
def database(pg_url: str | None, work: Path, name: str = "r") -> Iterator[str]:
    """A fresh database: a PostgreSQL one on ``pg_url``, else a new SQLite file ``name``."""
    if pg_url:
        with pg_database(pg_url) as url:
            yield url
        return
    for f in work.glob(f"{name}.db*"):
        f.unlink()
    yield f"sqlite:///{work / f'{name}.db'}"


def _run(
    checkout: Path,
    step: str,
    url: str,
    env: dict[str, str],
    folder: Path,
    work: Path,
    opts: argparse.Namespace,
) -> subprocess.CompletedProcess[str]:
    run_env = {**env, "RECONCILER_DATABASE_URL": url, "PYTHONPATH": str(checkout)}
    plain = step == "plan" and opts.plain_plan
    return subprocess.run(
        [sys.executable, "-m", "reconciler", step,
         *([] if plain else ["--parallelism", str(opts.parallelism)]), str(folder)],
        env=run_env, cwd=work, capture_output=True, text=True, check=False,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
