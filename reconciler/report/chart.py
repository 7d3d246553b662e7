"""The response-time chart of a connection: pure geometry, drawn as inline SVG by a template.

Computing coordinates here (not in the template) keeps the template readable and the chart
testable without a browser. Failed checks are drawn as crosses, healthy ones as dots, so the
chart does not tell health by colour alone; a summary sentence is the chart's accessible name.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.db.history import HealthPoint

WIDTH = 360
HEIGHT = 140
LEFT = 44  # room for the y-axis labels
RIGHT = 10
TOP = 10
BOTTOM = 24  # room for the first and last check times


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    response_ms: int
    healthy: bool
    label: str  # the point's tooltip: when, how long, which outcome


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right_edge: int
    bottom_edge: int
    points: tuple[ChartPoint, ...]
    polyline: str
    ticks: tuple[Tick, ...]
    first_label: str
    last_label: str
    summary: str


def nice_ceiling(value: float) -> int:
    """The smallest of 1, 2, 5 x 10^k that is at least ``value`` (at least 10 ms), so axis
    labels are round numbers."""
    value = max(value, 10.0)
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return int(step * power)
    return int(10 * power)  # pragma: no cover - the loop always returns


def _when(p: HealthPoint) -> str:
    return p.checked_at.strftime("%Y-%m-%d %H:%M UTC")


def _axis_labels(history: Sequence[HealthPoint]) -> tuple[str, str]:
    """First and last check times under the x axis; with seconds when the checks span less
    than an hour, so the two labels do not read the same."""
    first, last = history[0].checked_at, history[-1].checked_at
    fmt = "%Y-%m-%d %H:%M:%S" if (last - first).total_seconds() < 3600 else "%Y-%m-%d %H:%M"
    return first.strftime(fmt), last.strftime(fmt) if len(history) > 1 else ""


def _outcome(p: HealthPoint) -> str:
    return "healthy" if p.healthy else (p.failure_type or "unhealthy")


def response_chart(history: Sequence[HealthPoint]) -> Chart | None:
    """The chart of ``history`` (oldest first), or None when there is nothing to draw. Pure."""
    if not history:
        return None
    top_ms = nice_ceiling(max(p.response_ms for p in history))
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    n = len(history)
    points = []
    for i, p in enumerate(history):
        x = LEFT + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))
        y = TOP + plot_h * (1 - min(p.response_ms, top_ms) / top_ms)
        label = f"{_when(p)}: {p.response_ms} ms, {_outcome(p)}"
        points.append(ChartPoint(round(x, 1), round(y, 1), p.response_ms, p.healthy, label))
    ticks = tuple(
        Tick(round(TOP + plot_h * (1 - f), 1), f"{round(top_ms * f)} ms") for f in (0, 0.5, 1)
    )
    times = [p.response_ms for p in history]
    failed = sum(1 for p in history if not p.healthy)
    summary = (
        f"Response times of the last {n} check{'s' if n != 1 else ''}: "
        f"min {min(times)} ms, median {round(statistics.median(times))} ms, "
        f"max {max(times)} ms; {failed} failed."
    )
    first_label, last_label = _axis_labels(history)
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right_edge=WIDTH - RIGHT,
        bottom_edge=HEIGHT - BOTTOM,
        points=tuple(points),
        polyline=" ".join(f"{p.x},{p.y}" for p in points),
        ticks=ticks,
        first_label=first_label,
        last_label=last_label,
        summary=summary,
    )
