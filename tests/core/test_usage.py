"""Month-to-date cost against the declared budget (Anthropic usage monitoring). Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from reconciler.core.usage import budget_status, cents_to_usd, month_start


def test_amounts_are_cents_as_decimal_strings() -> None:
    assert cents_to_usd(["12345.50", "0.5", "100"]) == Decimal("124.46")
    with pytest.raises(ValueError, match="not a number"):
        cents_to_usd(["12,3"])


def test_the_month_starts_at_midnight_utc() -> None:
    late = datetime(2026, 12, 1, 1, 30, tzinfo=timezone(timedelta(hours=5)))  # Nov 30 in UTC
    assert month_start(late) == datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spent", "budget", "percent", "alert"),
    [
        ("399.99", 500, 80, False),
        ("400", 500, 80, True),
        ("600", 500, 100, True),
        ("0", 0, 80, False),
        ("0.01", 0, 80, True),
    ],
)
def test_crossing_the_alert_threshold(spent: str, budget: int, percent: int, alert: bool) -> None:
    status = budget_status(Decimal(spent), budget, percent)
    assert status.alert is alert


def test_the_message_says_how_much_of_the_budget_is_spent() -> None:
    status = budget_status(Decimal("412.5"), 500, 80)
    assert status.message == (
        "$412.50 of $500.00 this month (82 %): over the alert threshold of 80 %"
    )
    assert budget_status(Decimal("10"), 500, 80).message == "$10.00 of $500.00 this month (2 %)"
