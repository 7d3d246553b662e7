"""What the pages decide, as truth tables: states, file names, chart geometry, plan rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.planfile_read import change_from_json
from reconciler.core.render import attribute_rows
from reconciler.core.state import ObservedConnection, ObservedInstance
from reconciler.db.history import HealthPoint
from reconciler.report.chart import nice_ceiling, response_chart
from reconciler.report.pages import instance_state, logo_uri, organization_filename


def _instance(status: str, *connections: str) -> ObservedInstance:
    return ObservedInstance(
        id=1,
        organization="acme",
        provider="stripe",
        status=status,
        managed_by="manifest",
        connections=tuple(
            ObservedConnection(id=i, user_email=f"u{i}@x", status=s, managed_by="manifest")
            for i, s in enumerate(connections)
        ),
    )


@pytest.mark.parametrize(
    ("instance", "state"),
    [
        (None, "not_connected"),
        (_instance("active", "connected"), "connected"),
        (_instance("active", "error"), "error"),
        (_instance("active", "connected", "error"), "error"),
        (_instance("error", "connected"), "error"),
        (_instance("inactive", "connected"), "inactive"),
        (_instance("inactive", "error"), "inactive"),
        (_instance("active"), "not_connected"),
    ],
)
def test_instance_state(instance: ObservedInstance | None, state: str) -> None:
    assert instance_state(instance) == state


@pytest.mark.parametrize(
    ("organization", "filename"),
    [
        ("acme", "org-acme.html"),
        ("acme-corp_2", "org-acme-corp_2.html"),
        ("../etc/passwd", "org-x-"),
        ("Acme", "org-x-"),
        ("", "org-x-"),
    ],
)
def test_organization_filename_is_always_safe(organization: str, filename: str) -> None:
    name = organization_filename(organization)
    assert name.startswith(filename) and name.endswith(".html")
    assert "/" not in name and ".." not in name.removesuffix(".html")


def test_distinct_unsafe_names_get_distinct_files() -> None:
    assert organization_filename("A b") != organization_filename("A c")


def test_logo_is_a_data_uri_or_nothing() -> None:
    assert logo_uri(None) is None and logo_uri("") is None
    assert logo_uri("<svg/>") == "data:image/svg+xml;base64,PHN2Zy8+"


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 10), (7, 10), (10, 10), (11, 20), (67, 100), (150, 200), (4999, 5000)],
)
def test_nice_ceiling(value: float, ceiling: int) -> None:
    assert nice_ceiling(value) == ceiling


def _points(*ms: int, failed: tuple[int, ...] = ()) -> list[HealthPoint]:
    t0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    return [
        HealthPoint(
            t0 + timedelta(minutes=i),
            v,
            i not in failed,
            None if i not in failed else "unreachable",
        )
        for i, v in enumerate(ms)
    ]


def test_chart_geometry() -> None:
    assert response_chart([]) is None
    chart = response_chart(_points(20, 10, 0, 15, failed=(3,)))
    assert chart is not None
    xs = [p.x for p in chart.points]
    assert xs == sorted(xs) and xs[0] == chart.left and xs[-1] == chart.right_edge
    top, bottom = chart.ticks[-1].y, chart.ticks[0].y
    assert [p.y for p in chart.points[:3]] == [top, (top + bottom) / 2, bottom]
    assert [t.label for t in chart.ticks] == ["0 ms", "10 ms", "20 ms"]
    assert [p.healthy for p in chart.points] == [True, True, True, False]
    assert chart.points[3].label == "2026-01-01 12:03 UTC: 15 ms, unreachable"
    assert chart.summary == (
        "Response times of the last 4 checks: min 0 ms, median 12 ms, max 20 ms; 1 failed."
    )
    assert chart.polyline.count(",") == 4


def test_chart_of_one_check_is_centred() -> None:
    chart = response_chart(_points(42))
    assert chart is not None and len(chart.points) == 1
    assert chart.points[0].x == round((chart.left + chart.right_edge) / 2, 1)
    assert chart.last_label == "" and "last 1 check:" in chart.summary


def _rows(before: object, after: object, changed: list[str]) -> dict[str, tuple[object, ...]]:
    raw = {"address": "a/b", "action": "update", "before": before, "after": after}
    change = change_from_json({**raw, "changed": changed}, "test")
    return {r.name: (r.before, r.after, r.changed) for r in attribute_rows(change)}


def test_plan_rows_mark_changes_and_hide_credentials() -> None:
    table = _rows(
        {"owner": "a@x", "credentials": {"api_key": "(sensitive)"}, "active": True},
        {"owner": "b@x", "credentials": {"api_key": "sk_live_oops"}, "active": True},
        ["credentials.api_key", "owner"],
    )
    assert table["active"] == ("true", "true", False)
    assert table["credentials.api_key"] == ("(sensitive)", "(sensitive)", True)
    assert table["owner"] == ('"a@x"', '"b@x"', True)
    assert "sk_live_oops" not in str(table)
    created = change_from_json(
        {"address": "a/b/sender_emails/e@x", "action": "create", "after": {"email": "e@x"}}, "t"
    )
    assert [(r.before, r.after, r.changed) for r in attribute_rows(created)] == [
        (None, '"e@x"', False)
    ]


def test_chart_axis_labels_show_seconds_only_for_short_spans() -> None:
    t0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    short = response_chart(
        [HealthPoint(t0, 5, True), HealthPoint(t0 + timedelta(seconds=30), 6, True)]
    )
    long = response_chart([HealthPoint(t0, 5, True), HealthPoint(t0 + timedelta(days=2), 6, True)])
    assert short is not None and long is not None
    assert (short.first_label, short.last_label) == ("2026-01-01 12:00:00", "2026-01-01 12:00:30")
    assert (long.first_label, long.last_label) == ("2026-01-01 12:00", "2026-01-03 12:00")
