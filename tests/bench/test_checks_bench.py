"""bench/checks.py cannot rot: a tiny run gives every check healthy and a sane ratio."""

from __future__ import annotations

from bench.checks import measure


def test_checks_bench_runs() -> None:
    out = measure(checks=14, latency_ms=20, parallelism=7)
    assert out["healthy"] == 14
    assert out["floor_s"] == 0.04
    assert out["wall_s"] > 0
