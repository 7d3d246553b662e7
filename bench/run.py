"""Benchmark ``reconciler`` at fleet scale, on SQLite and PostgreSQL, against the floor.

For each N (``--orgs 100,1000``; add 10000 when you have the time) it writes a synthetic fleet
(bench/fleet.py), starts the bundled simulator in this process with ``--latency-ms`` of
latency, and for each database runs, each as its own ``python -m reconciler`` process:
``validate``; the first ``plan``; the first ``apply --parallelism P``; ``health``; a no-op
``plan`` and ``apply``; a ``plan`` after rotating 10% of the secrets. Beside each step it runs
the floor (bench/floor.py) on the same state, and prints wall time, the ratio to the floor, CPU
time, peak memory and SQL statements, then how time grows with N and the targets of issue 16.
``--workers N`` passes ``--workers N`` to apply and health; CPU time includes the workers'
(they are waited for), peak memory and SQL statements are the first process's only.

    python bench/run.py                       # N = 100 and 1,000, SQLite and PostgreSQL
    python bench/run.py --orgs 10000 --backends sqlite --json results.json

PostgreSQL: ``--pg-url`` names a server and a database to connect to (default
``postgresql://postgres@127.0.0.1:5432/test``); each run creates a fresh database beside it and
drops it afterwards. When the server cannot be reached, PostgreSQL is skipped with a line
saying so.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` and `reconciler` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report
from bench.fleet import Fleet, generate_fleet, workspace_numbers
from bench.measure import REPO, Measurement, run_floor, run_reconciler, summary_of

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Step:
    """One measured command; ``expect`` is a substring of the summary line it must print."""

    name: str
    args: tuple[str, ...]
    floor: str  # "f" measured floor, "h" health-check floor, "p" parse-only floor
    expect: str
    rotated: bool = False
    # the command reads the provider side (plan's refresh): its floor adds those reads, as
    # GETs x latency / parallelism, the GETs counted by the simulator during the step
    reads: bool = False


def steps(
    fleet: Fleet, parallelism: int, rotated_count: int, workers: int | None = None
) -> list[Step]:
    folder = str(fleet.folder)
    split = ("--workers", str(workers)) if workers else ()
    at_once = ("--parallelism", str(parallelism))
    apply = ("apply", *at_once, *split, folder)
    plan = ("plan", *at_once, folder)
    health = ("health", *at_once, *split)
    first_plan = f"Plan: {fleet.objects} to create, 0 to update"
    return [
        Step("validate", ("validate", folder), "p", f"{len(fleet.organizations)} organization(s)"),
        Step("plan (first)", plan, "f", first_plan, reads=True),
        Step("apply (first)", apply, "h", "Apply complete"),
        Step("health", health, "h", f"{fleet.connections} healthy, 0 unhealthy."),
        Step("plan (no-op)", plan, "f", "No changes", reads=True),
        Step("plan (no-op, db)", ("plan", "--refresh=false", folder), "f", "No changes"),
        Step("apply (no-op)", apply, "f", "No changes", reads=True),
        Step(
            "plan (rotated)",
            # the database only: the simulator gives each Stripe key its own account, where a
            # rotated key would find no webhook endpoint (a real rolled key keeps its account)
            ("plan", "--refresh=false", folder),
            "f",
            f"Plan: 0 to create, {rotated_count} to update, 0 to delete",
            rotated=True,
        ),
    ]


# -- databases -----------------------------------------------------------------------------


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'reconciler.db'}"


def pg_unreachable(admin_url: str) -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(_plain(admin_url), connect_timeout=3):
            return None
    except Exception as e:  # any failure to connect means: skip, and say why
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    """A fresh database for one run, dropped afterwards."""
    import psycopg

    name = f"reconciler_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_plain(admin_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _plain(admin_url).rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(_plain(admin_url), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


# -- one run -------------------------------------------------------------------------------


def base_environment(sim_env: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without any RECONCILER_ setting of the user's, plus the
    repository on the path (the working tree is what is measured) and the simulator."""
    from reconciler.crypto import generate_entry

    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["RECONCILER_ENCRYPTION_KEYS"] = generate_entry("bench1")
    env["RECONCILER_ACTOR"] = "bench"
    env.update(sim_env)
    return env


def measure_run(
    fleet: Fleet,
    backend: str,
    db_url: str,
    env: Mapping[str, str],
    workdir: Path,
    opts: argparse.Namespace,
    sim: Any = None,
) -> list[dict[str, Any]]:
    """The steps on one fresh database; one row per step. ``sim`` (the simulator) counts
    the requests of each step, for the floor of the steps that read the provider side."""
    rotated = fleet.rotate(opts.rotate)
    rotated_count = sum(1 for k in rotated if rotated[k] != fleet.secrets[k])
    rows = []
    for step in steps(fleet, opts.parallelism, rotated_count, opts.workers):
        step_env = {**env, **(rotated if step.rotated else fleet.secrets)}
        step_env["RECONCILER_DATABASE_URL"] = db_url
        label = f"{backend}-{len(fleet.organizations)}-{step.name.replace(' ', '_')}"
        label = label.replace("(", "").replace(")", "")
        load = os.getloadavg()[0]  # other work on the machine shows here, not in cpu_s
        floor = _floor(step, fleet, db_url, step_env, workdir, label, opts)
        before = sim.request_count() if sim is not None else 0
        m = run_reconciler(
            step.args,
            step_env,
            workdir=workdir,
            label=label,
            timeout=opts.timeout,
            count_statements=not opts.no_count,
            profile_dir=opts.profile,
        )
        requests = sim.request_count() - before if sim is not None else 0
        if step.reads and requests:
            floor = _with_reads(floor, requests, opts)
        rows.append(
            {
                **_row(step, fleet, backend, m, floor, opts),
                "requests": requests,
                "loadavg_before": load,
            }
        )
        r = rows[-1]
        print(
            f"  {backend:<10} N={r['orgs']:<6} {step.name:<16} {r['wall_s']:8.2f} s  "
            f"x{r['ratio']:.2f} of floor  {r['max_rss_mb']:.0f} MB  "
            f"{'ok' if r['ok'] else 'UNEXPECTED: ' + r['summary'][:80]}",
            flush=True,
        )
        if m.timed_out:
            print(f"  {step.name} timed out after {opts.timeout:.0f} s; stopping this run.")
            break
    return rows


def _floor(
    step: Step,
    fleet: Fleet,
    db_url: str,
    env: Mapping[str, str],
    workdir: Path,
    label: str,
    opts: argparse.Namespace,
) -> tuple[float, dict[str, Any]]:
    if step.floor == "h":
        checks = fleet.connections
        return checks * opts.latency_ms / 1000 / opts.parallelism, {"checks": checks}
    m: Measurement = run_floor(
        fleet.folder,
        None if step.floor == "p" else db_url,
        env,
        workdir=workdir,
        label=label,
        parts="parse" if step.floor == "p" else "parse,read,hmac",
        repeat=opts.floor_repeat,
    )
    return m.wall_s, {**m.extra, "max_rss_mb": m.max_rss_mb, "cpu_s": m.cpu_s}


def _with_reads(
    floor: tuple[float, dict[str, Any]], requests: int, opts: argparse.Namespace
) -> tuple[float, dict[str, Any]]:
    """The floor of a step that reads the provider side: the measured floor plus its GETs
    at the simulator's latency, ``--parallelism`` at a time."""
    seconds, detail = floor
    reads_s = requests * opts.latency_ms / 1000 / opts.parallelism
    return seconds + reads_s, {**detail, "reads": requests, "reads_s": reads_s}


def _row(
    step: Step,
    fleet: Fleet,
    backend: str,
    m: Measurement,
    floor: tuple[float, dict[str, Any]],
    opts: argparse.Namespace,
) -> dict[str, Any]:
    assert m.output is not None
    summary = "timed out" if m.timed_out else summary_of(m.output)
    floor_s, floor_detail = floor
    return {
        "backend": backend,
        "orgs": len(fleet.organizations),
        "connections": fleet.connections,
        "step": step.name,
        "command": "reconciler "
        + " ".join(a if a != str(fleet.folder) else "FLEET" for a in step.args),
        "wall_s": m.wall_s,
        "cpu_s": m.cpu_s,
        "cpu_ms_per_connection": m.cpu_s * 1000 / fleet.connections,
        "max_rss_mb": m.max_rss_mb,
        "ru_maxrss_mb": m.extra.get("ru_maxrss_mb"),
        "statements": m.statements,
        "exit_code": m.exit_code,
        "summary": summary,
        "ok": m.exit_code == 0 and step.expect in summary and not m.timed_out,
        "floor_kind": step.floor + ("r" if "reads" in floor_detail else ""),
        "floor_s": floor_s,
        "floor_detail": floor_detail,
        "ratio": m.wall_s / floor_s if floor_s else None,
        "latency_ms": opts.latency_ms,
        "parallelism": opts.parallelism,
    }


# -- the whole benchmark -------------------------------------------------------------------


def allow_large_environment(n: int) -> None:
    """Linux caps a process's arguments plus environment at a quarter of the stack limit; a
    fleet of 10,000 organizations has 70,000 secret variables (about 5 MB)."""
    need = n * 7 * 80 * 4 * 2
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_STACK, (new, hard))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Benchmark reconciler at fleet scale against the floor (issue 8)."
    )
    ap.add_argument("--orgs", default="100,1000", help="Comma list of fleet sizes.")
    ap.add_argument(
        "--backends",
        default="sqlite,postgresql",
        help="Comma list of sqlite and postgresql (both by default; 'both' says so too).",
    )
    ap.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server to use.")
    ap.add_argument("--latency-ms", type=float, default=50.0, help="Simulator latency.")
    ap.add_argument("--parallelism", type=int, default=50, help="apply --parallelism.")
    ap.add_argument(
        "--workers",
        type=int,
        default=None,
        help="apply and health --workers N (default: the product's default for the fleet).",
    )
    ap.add_argument("--rotate", type=float, default=0.1, help="Fraction of secrets rotated.")
    ap.add_argument("--floor-repeat", type=int, default=3, help="Floor runs; the fastest counts.")
    ap.add_argument("--timeout", type=float, default=600.0, help="Seconds per command.")
    ap.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    ap.add_argument("--workdir", type=Path, default=None, help="Keep fleets and outputs here.")
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="Run each command under pyinstrument; profiles go to this folder.",
    )
    ap.add_argument(
        "--no-git",
        action="store_true",
        help="Leave the fleet outside git (by default it is committed, as fleets are).",
    )
    ap.add_argument(
        "--no-resources",
        action="store_true",
        help="Connections only: no resources, so nothing is created or read at the providers "
        "but the health checks (the fleet issue 16 first measured).",
    )
    ap.add_argument(
        "--no-count",
        action="store_true",
        help="Run plain `python -m reconciler` (no SQL statement counts).",
    )
    opts = ap.parse_args(argv)
    names = opts.backends.replace("both", "sqlite,postgresql").split(",")
    opts.backends = [b.strip() for b in names if b.strip()]
    unknown = sorted(set(opts.backends) - {"sqlite", "postgresql"})
    if unknown:
        ap.error(f"--backends: unknown backend {', '.join(unknown)}; use sqlite and postgresql")
    return opts


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.profile:
        opts.profile.mkdir(parents=True, exist_ok=True)
    sizes = [int(x) for x in opts.orgs.split(",") if x.strip()]
    backends = list(dict.fromkeys(opts.backends))
    allow_large_environment(max(sizes))
    skipped: dict[str, str] = {}
    if "postgresql" in backends:
        why = pg_unreachable(opts.pg_url)
        if why:
            print(f"PostgreSQL: skipped, cannot connect to {opts.pg_url}: {why}")
            skipped["postgresql"] = why
            backends.remove("postgresql")
    root = opts.workdir or Path(tempfile.mkdtemp(prefix="reconciler-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    from reconciler.simulator import Simulator

    try:
        with Simulator(latency_ms=opts.latency_ms) as sim:
            env = base_environment(sim.env())
            for n in sizes:
                fleet = generate_fleet(
                    root / f"fleet-{n}", n, git=not opts.no_git, resources=not opts.no_resources
                )
                for backend in backends:
                    workdir = root / f"{backend}-{n}"
                    workdir.mkdir(exist_ok=True)
                    sim.reset()
                    workspace_numbers(fleet, sim)
                    db = (
                        sqlite_database(workdir)
                        if backend == "sqlite"
                        else pg_database(opts.pg_url)
                    )
                    with db as url:
                        rows += measure_run(fleet, backend, url, env, workdir, opts, sim)
    finally:
        if opts.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    grown = report.growth(rows)
    goals = report.targets(rows, grown)
    print()
    print(report.table(rows))
    print()
    print(report.growth_table(grown))
    print()
    print(report.targets_table(goals))
    if opts.json:
        doc = {
            "machine": report.machine(),
            "command": " ".join(
                ["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]
            ),
            "options": vars(opts),
            "skipped": skipped,
            "results": rows,
            "growth": grown,
            "targets": goals,
        }
        opts.json.write_text(report.to_json(doc), encoding="utf-8")
        print(f"\nWrote {opts.json}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
