"""``reconciler metrics`` read by a real OpenMetrics parser (prometheus-client's): the series
SPEC section 10 names, no label naming an organization, as many series for 3 organizations as
for 30, and ``--out`` replacing the file in one step."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.conftest import Env
from tests.incidents.test_delivery import fleet


def parse(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def series(text: str) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    return [
        (s.name, tuple(sorted(s.labels.items())))
        for f in text_string_to_metric_families(text)
        for s in f.samples
    ]


def value(text: str, name: str, **labels: str) -> float:
    for f in text_string_to_metric_families(text):
        for s in f.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError(f"no sample {name} {labels}")


def test_metrics_parse_and_name_no_organization(env: Env, sim) -> None:
    r = env.run("metrics")  # before any database: zeros, still valid
    assert r.exit_code == 0, r.output
    empty = series(r.stdout)
    assert env.run("apply").exit_code == 0
    sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    assert env.run("health").exit_code == 1
    r = env.run("metrics")
    assert r.exit_code == 0, r.output
    text = r.stdout
    families = parse(text)
    for name, kind in (
        ("reconciler_connections", "gauge"),
        ("reconciler_incidents_open", "gauge"),
        ("reconciler_health_check_duration_seconds", "histogram"),
        ("reconciler_last_run_timestamp_seconds", "gauge"),
        ("reconciler_notifications_pending", "gauge"),
    ):
        assert families[name].type == kind, name  # type: ignore[attr-defined]
    assert series(text) == empty  # the same series, other values
    assert (
        value(
            text, "reconciler_incidents_open", provider="stripe", failure_type="invalid_credentials"
        )
        == 1
    )
    assert value(text, "reconciler_connections", provider="stripe", status="error") == 1
    assert value(text, "reconciler_connections", provider="stripe", status="connected") == 1
    assert value(text, "reconciler_health_check_duration_seconds_count", provider="stripe") == 4
    assert value(text, "reconciler_last_run_timestamp_seconds", command="health") > 0
    assert value(text, "reconciler_last_run_exit_code", command="health") == 1
    assert value(text, "reconciler_last_run_exit_code", command="apply") == 0
    assert value(text, "reconciler_last_run_exit_code", command="notify") == -1
    for _name, labels in series(text):
        assert "organization" not in dict(labels)
    assert "acme" not in text and "globex" not in text


def test_series_do_not_grow_with_organizations(env: Env, sim) -> None:
    counts = []
    for n in (3, 30):
        fleet(env, n)
        assert env.run("apply").exit_code == 0
        assert env.run("health").exit_code == 0
        text = env.run("metrics").stdout
        assert value(text, "reconciler_organizations") == n
        assert value(text, "reconciler_connections", provider="stripe", status="connected") == n
        counts.append(len(series(text)))
    assert counts[0] == counts[1]


def test_out_writes_the_file_atomically(env: Env, sim, tmp_path: Path) -> None:
    assert env.run("apply").exit_code == 0
    target = tmp_path / "textfile" / "reconciler.prom"
    r = env.run("metrics", "--out", str(target))
    assert r.exit_code == 0 and r.stdout == ""
    first = target.read_text()
    assert parse(first)["reconciler_connections"]
    assert env.run("health").exit_code == 0
    assert env.run("metrics", "--out", str(target)).exit_code == 0
    assert target.read_text() != first
    assert [p.name for p in target.parent.iterdir()] == ["reconciler.prom"]  # no leftovers
