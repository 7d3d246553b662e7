"""A provider outage at fleet scale: N organizations, one provider black-holed (Stripe, or
``--provider``), the rest simulated.

Measures the first ``apply`` (default deadline per check, 30 s) when one provider accepts
connections and never answers. Without the circuit breaker every Stripe check waits out its
deadline (N / parallelism x 30 s); with it, the run pays about one deadline.

    python bench/outage.py                       # 200 organizations, --parallelism 10
    python bench/outage.py --orgs 1000 --parallelism 50
    python bench/outage.py --breaker-after 0     # the breaker off, for comparison
    python bench/outage.py --provider postmark   # another provider down
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet import PROVIDERS, generate_fleet, workspace_numbers
from bench.measure import run_reconciler
from reconciler.crypto import generate_entry
from reconciler.simulator import Simulator
from tests.netfaults import BlackHole


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=200)
    parser.add_argument("--provider", default="stripe", choices=PROVIDERS, help="The one down.")
    parser.add_argument("--parallelism", type=int, default=10)
    parser.add_argument("--breaker-after", default=None, help="RECONCILER_CIRCUIT_BREAKER_AFTER")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--no-resources", action="store_true", help="Connections only (bench/fleet.py)."
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp, Simulator() as sim:
        work = Path(tmp)
        fleet = generate_fleet(work / "manifests", args.orgs, resources=not args.no_resources)
        workspace_numbers(fleet, sim)  # the Quo numbers the manifests declare exist
        hole = BlackHole()
        env = {
            **fleet.secrets,
            **sim.env(),
            "PATH": "/usr/bin:/bin",
            f"RECONCILER_BASE_URL_{args.provider.upper()}": f"http://127.0.0.1:{hole.port}",
            "RECONCILER_DATABASE_URL": f"sqlite:///{work / 'bench.db'}",
            "RECONCILER_ENCRYPTION_KEYS": generate_entry("bench"),
            "RECONCILER_ACTOR": "bench",
        }
        if args.breaker_after is not None:
            env["RECONCILER_CIRCUIT_BREAKER_AFTER"] = args.breaker_after
        try:
            m = run_reconciler(
                ["apply", str(work / "manifests"), "--parallelism", str(args.parallelism)],
                env,
                workdir=work,
                label="apply-outage",
                timeout=args.timeout,
                count_statements=False,
            )
        finally:
            hole.close()
        db = sqlite3.connect(work / "bench.db")
        rows = db.execute(
            "SELECT provider, status, count(*) FROM integration_instances GROUP BY 1, 2"
        ).fetchall()
        sent = hole.accepted
        tail = (work / "apply-outage.out").read_text().splitlines()[-3:]
    print(
        f"{args.orgs} organizations, {args.provider} black-holed, --parallelism {args.parallelism}"
    )
    print(f"apply: {m.wall_s:.1f} s wall, {m.cpu_s:.1f} s CPU, exit {m.exit_code}")
    print(f"connections the black hole accepted: {sent}")
    for provider, status, count in rows:
        print(f"  {provider:12} {status:8} {count}")
    print("last lines:", *tail, sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
