"""Anthropic's cost report (Admin API, ``admin_key``): month-to-date cost. GET only.

``GET /v1/organizations/cost_report?starting_at=<month start>&bucket_width=1d`` gives daily
buckets whose ``amount`` is a decimal string in cents; pages follow ``next_page`` (``page=``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconciler.core.usage import MonthToDate, cents_to_usd, month_start
from reconciler.providers.interface import Context
from reconciler.providers.transport import ProviderApi

API_VERSION = "2023-06-01"
PAGE = 31


def describe(body: Any) -> tuple[str | None, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, ""
    return error.get("type"), str(error.get("message") or "")


class AnthropicUsage:
    """Reads only; needs the connection's ``admin_key`` (a ProviderError names it if absent)."""

    provider = "anthropic"

    def __init__(self, ctx: Context) -> None:
        self.api: ProviderApi = ctx.api(
            "admin_key",
            lambda key: {"x-api-key": key, "anthropic-version": API_VERSION},
            describe,
        )

    async def month_to_date(self, now: datetime) -> MonthToDate:
        since = month_start(now)
        amounts: list[str] = []
        page: str | None = None
        while True:
            params: dict[str, Any] = {
                "starting_at": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "bucket_width": "1d",
                "limit": PAGE,
            }
            if page is not None:
                params["page"] = page
            body = (
                await self.api.get(
                    "/v1/organizations/cost_report", "read the cost report", **params
                )
            ).body or {}
            for bucket in body.get("data") or []:
                amounts += [str(r.get("amount", "0")) for r in bucket.get("results") or []]
            page = body.get("next_page")
            if not body.get("has_more") or not page:
                return MonthToDate(cents_to_usd(amounts), since, now)
