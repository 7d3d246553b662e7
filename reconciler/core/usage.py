"""Anthropic usage monitoring: month-to-date cost against the declared budget. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation


@dataclass(frozen=True)
class MonthToDate:
    """What the cost report said for the month so far (USD), and when it was read."""

    usd: Decimal
    since: datetime
    read_at: datetime


@dataclass(frozen=True)
class BudgetStatus:
    month_to_date_usd: Decimal
    budget_usd: Decimal
    alert_at_percent: int
    percent_used: Decimal
    alert: bool  # the month-to-date cost crossed alert_at_percent of the budget

    @property
    def message(self) -> str:
        used = f"${self.month_to_date_usd:.2f} of ${self.budget_usd:.2f}"
        if not self.alert:
            return f"{used} this month ({self.percent_used:.0f} %)"
        return (
            f"{used} this month ({self.percent_used:.0f} %): over the alert threshold of "
            f"{self.alert_at_percent} %"
        )


def month_start(now: datetime) -> datetime:
    """00:00 UTC on the first day of ``now``'s month: where the cost report starts."""
    now = now.astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def cents_to_usd(amounts: Iterable[str]) -> Decimal:
    """The cost report's amounts are decimal strings in cents; their sum in dollars."""
    total = Decimal(0)
    for amount in amounts:
        try:
            total += Decimal(str(amount))
        except InvalidOperation:
            raise ValueError("the cost report holds an amount that is not a number") from None
    return total / 100


def budget_status(
    month_to_date_usd: Decimal, monthly_budget_usd: float | Decimal, alert_at_percent: int
) -> BudgetStatus:
    budget = Decimal(str(monthly_budget_usd))
    percent = (month_to_date_usd * 100 / budget) if budget > 0 else Decimal(0)
    crossed = month_to_date_usd > 0 if budget == 0 else percent >= alert_at_percent
    return BudgetStatus(month_to_date_usd, budget, alert_at_percent, percent, crossed)
