"""The benchmark runs end to end on a tiny fleet, so it cannot rot. Its figures are not judged:
benchmarks are never part of the suite's pass/fail, only that every step did what it should."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import ab, floor, report
from bench.fleet import PROVIDERS, generate_fleet
from bench.run import main
from tests.conftest import REPO


def test_fleet_has_every_provider_and_rotation_is_a_tenth(tmp_path: Path) -> None:
    fleet = generate_fleet(tmp_path / "fleet", 20)
    assert len(list((tmp_path / "fleet").glob("*.yaml"))) == 20
    assert fleet.connections == 20 * len(PROVIDERS) == len(fleet.secrets)
    rotated = fleet.rotate(0.1)
    changed = [k for k in rotated if rotated[k] != fleet.secrets[k]]
    assert len(changed) == 14
    assert fleet.rotate(0.1) == rotated  # deterministic


def test_floor_parses_and_fingerprints_every_secret(tmp_path: Path) -> None:
    fleet = generate_fleet(tmp_path / "fleet", 3)
    env = {**fleet.secrets, "RECONCILER_ENCRYPTION_KEYS": "k1:" + "A" * 43 + "="}
    out = floor.measure(fleet.folder, f"sqlite:///{tmp_path / 'none.db'}", env)
    assert out["documents"] == 3 and out["fingerprints"] == 21 and out["rows"] == 0


def test_bench_runs_on_five_organizations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "results.json"
    work = tmp_path / "work"
    code = main(
        [
            "--orgs",
            "5",
            "--backends",
            "sqlite",
            "--latency-ms",
            "5",
            "--floor-repeat",
            "1",
            "--timeout",
            "60",
            "--json",
            str(out_json),
            "--workdir",
            str(work),
        ]
    )
    printed = capsys.readouterr().out
    doc = json.loads(out_json.read_text())
    rows = doc["results"]
    assert [r["step"] for r in rows] == [
        "validate",
        "plan (first)",
        "apply (first)",
        "health",
        "plan (no-op)",
        "plan (no-op, db)",
        "apply (no-op)",
        "plan (rotated)",
    ]
    assert all(r["ok"] for r in rows), [(r["step"], r["summary"]) for r in rows]
    assert code == 0
    assert all(r["ratio"] and r["max_rss_mb"] > 0 for r in rows)
    assert rows[2]["statements"]["total"] > 0
    # the plans that read the provider side have those reads in their floor; not the others
    by_step = {r["step"]: r for r in rows}
    assert by_step["plan (no-op)"]["requests"] > 0
    assert by_step["plan (no-op)"]["floor_kind"] == "fr"
    assert by_step["plan (no-op, db)"]["requests"] == 0
    assert by_step["plan (no-op, db)"]["floor_kind"] == "f"
    assert by_step["apply (first)"]["cpu_ms_per_connection"] > 0
    assert "ratio" in printed and "plan (no-op)" in printed
    assert doc["machine"]["nproc"] >= 1
    secrets = generate_fleet(tmp_path / "again", 5).secrets.values()
    for output in work.glob("**/*.out"):
        text = output.read_text()
        assert not any(s in text for s in secrets), f"a secret in {output.name}"


def test_targets_are_judged_at_a_thousand_organizations() -> None:
    def row(step: str, orgs: int, wall: float, ratio: float) -> dict[str, object]:
        return {
            "backend": "sqlite",
            "step": step,
            "orgs": orgs,
            "wall_s": wall,
            "ratio": ratio,
            "max_rss_mb": 100.0,
        }

    rows = [
        row("plan (no-op)", 100, 1.0, 1.2),
        row("plan (no-op)", 1000, 13.0, 1.25),
        row("plan (no-op, db)", 1000, 1.0, 1.4),
        {**row("apply (first)", 1000, 9.0, 1.9), "cpu_ms_per_connection": 2.5},
    ]
    grown = report.growth(rows)
    assert grown[0]["time_ratio"] == 13.0 and not grown[0]["ok"]
    judged = {t["target"]: t["ok"] for t in report.targets(rows, grown)}
    assert judged == {
        "no-op plan <= 1.3x floor": True,
        "no-op plan, --refresh=false <= 1.3x": False,
        "no-op apply <= 1.3x floor": None,  # not measured
        "first apply <= 2x health-check floor": True,
        "first apply CPU <= 2 ms per connection": False,
        "peak memory < 300 MB": True,
        "10x orgs <= 12x time (worst step)": False,
    }


def test_ab_plans_each_checkout_on_a_database_it_applied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a second checkout (an older one may not read a newer schema: each applies its own)
    other = tmp_path / "other"
    shutil.copytree(
        REPO / "reconciler", other / "reconciler", ignore=shutil.ignore_patterns("__pycache__")
    )
    argv = [str(REPO), str(other), "--step", "plan", "--no-resources", "--plain-plan"]
    code = ab.main([*argv, "--orgs", "3", "--repeat", "1", "--latency-ms", "5"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    runs = [line for line in lines if " wall " in line and " exit " in line]
    assert len(runs) == 2 and all("exit 0" in line for line in runs), lines
    assert any(str(other) in line and "first/this" in line for line in lines)
