"""Concurrent health checks against their floor (issue 5's acceptance).

N connections against the bundled simulator at a given latency and parallelism: the floor is
N x latency / parallelism (200 x 0.1 s / 20 = 1 s); the checks should take about that plus a
little overhead, not N x latency (20 s) as sequential checks would.

    python bench/checks.py                          # 200 checks, 100 ms, parallelism 20
    python bench/checks.py --checks 1000 --latency-ms 50 --parallelism 50 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.core.catalog import load_catalog
from reconciler.core.secret import Secret
from reconciler.health import CheckRequest, run_checks
from reconciler.simulator import Simulator


def measure(checks: int, latency_ms: float, parallelism: int) -> dict[str, float | int]:
    catalog = load_catalog()
    providers = sorted(catalog.providers.values(), key=lambda p: p.name)
    keys = {"google_maps": "AIzaBench{}", "stripe": "sk_test_bench{}"}
    with Simulator(latency_ms=latency_ms) as sim:
        requests = []
        for i in range(checks):
            p = providers[i % len(providers)]
            key = keys.get(p.name, "bench-key-{}").format(i)
            requests.append(CheckRequest(i, p, {"api_key": Secret(key)}, sim.base_url(p.name)))
        start = time.perf_counter()
        results = run_checks(requests, parallelism=parallelism)
        wall = time.perf_counter() - start
    healthy = sum(1 for r in results if r.healthy)
    floor = checks * latency_ms / 1000 / parallelism
    return {
        "checks": checks,
        "latency_ms": latency_ms,
        "parallelism": parallelism,
        "healthy": healthy,
        "wall_s": round(wall, 3),
        "floor_s": round(floor, 3),
        "ratio": round(wall / floor, 2),
        "sequential_s": round(checks * latency_ms / 1000, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checks", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--parallelism", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    out = measure(args.checks, args.latency_ms, args.parallelism)
    print(
        f"{out['checks']} checks at {out['latency_ms']:g} ms, parallelism {out['parallelism']}: "
        f"{out['wall_s']:.2f} s (floor {out['floor_s']:.2f} s, x{out['ratio']}; sequential "
        f"would be {out['sequential_s']:g} s); {out['healthy']} healthy"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0 if out["healthy"] == out["checks"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
