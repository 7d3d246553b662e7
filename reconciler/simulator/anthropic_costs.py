"""Anthropic's cost report (Admin API): `GET /v1/organizations/cost_report`, admin keys only
(`sk-ant-admin…`). One bucket per day from `starting_at` to now; `amount` is a decimal string in
cents; pages follow `next_page` (sent back as `page=`). A day's amount is set per organization
(any admin key of it, see `accounts`) through `/_sim` (`daily_cents`), else 1234.50 cents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from reconciler.simulator import accounts
from reconciler.simulator.anthropic_api import error
from reconciler.simulator.dialect import Call, Route
from reconciler.simulator.wire import Answer, SimRequest, request_id

ADMIN_PREFIX = "sk-ant-admin"
DEFAULT_DAILY_CENTS = "1234.50"
DAY = timedelta(days=1)


def _instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def daily_cents(call: Call) -> Decimal:
    organization = accounts.account(call.key or "")
    raw = call.state.settings.get(("anthropic-daily-cents", organization), DEFAULT_DAILY_CENTS)
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        return Decimal(DEFAULT_DAILY_CENTS)


def cost_report(request: SimRequest, call: Call) -> Answer:
    if not (call.key or "").startswith(ADMIN_PREFIX):
        return error(
            401,
            "authentication_error",
            "The Admin API requires an admin key (sk-ant-admin...); this is a standard API key.",
        )
    start = _instant(request.param("starting_at"))
    if start is None:
        return error(400, "invalid_request_error", "starting_at: a RFC 3339 timestamp is required")
    if (request.param("bucket_width") or "1d") != "1d":
        return error(400, "invalid_request_error", "bucket_width: only '1d' is supported")
    raw_limit = request.param("limit") or "7"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 31:
        return error(400, "invalid_request_error", "limit: Input should be between 1 and 31")
    now = datetime.fromtimestamp(call.state.now(), UTC)
    end = min(_instant(request.param("ending_at")) or now, now)
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    days = []
    day = first
    while day < end:
        days.append(day)
        day += DAY
    page = request.param("page")
    offset = int(page[5:]) if page and page.startswith("page_") and page[5:].isdigit() else 0
    chunk = days[offset : offset + int(raw_limit)]
    more = offset + int(raw_limit) < len(days)
    amount = daily_cents(call)
    data = [
        {
            "starting_at": _stamp(d),
            "ending_at": _stamp(d + DAY),
            "results": [
                {
                    "currency": "USD",
                    "amount": f"{amount:.2f}",
                    "workspace_id": None,
                    "description": None,
                    "cost_type": None,
                    "context_window": None,
                    "model": None,
                    "service_tier": None,
                    "token_type": None,
                }
            ],
        }
        for d in chunk
    ]
    body = {
        "data": data,
        "has_more": more,
        "next_page": f"page_{offset + int(raw_limit)}" if more else None,
    }
    return Answer.json(200, body, {"request-id": request_id("req_011C", 20)})


ROUTES = (Route("GET", "/v1/organizations/cost_report", cost_report),)
