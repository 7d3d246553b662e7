"""Anthropic: `x-api-key: KEY` (or Bearer) plus `anthropic-version`; errors as
`{"type": "error", "error": {"type", "message"}, "request_id"}`; 529 when overloaded."""

from __future__ import annotations

from typing import Any

from reconciler.simulator.dialect import Call, Dialect, Route, bearer
from reconciler.simulator.verdict import Outcome
from reconciler.simulator.wire import Answer, SimRequest, network_block, request_id

# (id, display name, created_at, alias), newest first, as the real listing orders them.
MODELS: tuple[tuple[str, str, str, str], ...] = (
    ("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-24T00:00:00Z", "claude-opus-4-5"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-15T00:00:00Z", "claude-haiku-4-5"),
    (
        "claude-sonnet-4-5-20250929",
        "Claude Sonnet 4.5",
        "2025-09-29T00:00:00Z",
        "claude-sonnet-4-5",
    ),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05T00:00:00Z", "claude-opus-4-1"),
    ("claude-opus-4-20250514", "Claude Opus 4", "2025-05-22T00:00:00Z", "claude-opus-4-0"),
    ("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z", "claude-sonnet-4-0"),
    (
        "claude-3-5-haiku-20241022",
        "Claude Haiku 3.5",
        "2024-10-22T00:00:00Z",
        "claude-3-5-haiku-latest",
    ),
)


def credential(request: SimRequest) -> str | None:
    """`x-api-key` (the documented header), or `Authorization: Bearer KEY`, which the official
    SDK sends since its 2.x releases. A key in the query string or without a scheme is refused."""
    return request.header("x-api-key") or bearer(request)


def error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Answer:
    rid = request_id("req_011C", 20)
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": rid}
    return Answer.json(status, body, {"request-id": rid, **(headers or {})})


def refusal(outcome: Outcome, request: SimRequest) -> Answer:
    match outcome:
        case Outcome.MISSING:
            return error(401, "authentication_error", "x-api-key header is required")
        case Outcome.RATE_LIMITED:
            return error(
                429,
                "rate_limit_error",
                "This request would exceed the rate limit for your organization. "
                "Please reduce the prompt length or the maximum tokens requested, "
                "or try again later.",
                {
                    "retry-after": "1",
                    "anthropic-ratelimit-requests-limit": "50",
                    "anthropic-ratelimit-requests-remaining": "0",
                },
            )
        case Outcome.OVERLOADED:
            return error(529, "overloaded_error", "Overloaded")
        case Outcome.UNAVAILABLE:
            return error(503, "api_error", "Service unavailable")
        case Outcome.OUTAGE | Outcome.UNKNOWN_ERROR:
            return error(500, "api_error", "Internal server error")
        case Outcome.NETBLOCK:
            return network_block()
        case Outcome.FORBIDDEN:
            return error(
                403,
                "permission_error",
                "Your API key does not have permission to use the specified resource.",
            )
        case _:
            return error(401, "authentication_error", "invalid x-api-key")


def not_found(request: SimRequest) -> Answer:
    return error(404, "not_found_error", "Not Found")


def model_info(entry: tuple[str, str, str, str]) -> dict[str, Any]:
    model_id, name, created, _ = entry
    return {"type": "model", "id": model_id, "display_name": name, "created_at": created}


def _version_refusal(request: SimRequest) -> Answer | None:
    """The API refuses a request without `anthropic-version` before it looks at anything else."""
    if request.header("anthropic-version"):
        return None
    return error(400, "invalid_request_error", "anthropic-version: header is required")


def _limit(request: SimRequest) -> int | Answer:
    raw = request.param("limit") or "20"
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        return error(400, "invalid_request_error", "limit: Input should be between 1 and 1000")
    return int(raw)


def list_models(request: SimRequest, call: Call) -> Answer:
    refused = _version_refusal(request)
    if refused is not None:
        return refused
    limit = _limit(request)
    if isinstance(limit, Answer):
        return limit
    ids = [m[0] for m in MODELS]
    after, before = request.param("after_id"), request.param("before_id")
    if before in ids:
        start = max(ids.index(before) - limit, 0)
        page = list(MODELS[start : ids.index(before)])
        has_more = start > 0
    else:
        start = ids.index(after) + 1 if after in ids else 0
        page = list(MODELS[start : start + limit])
        has_more = start + limit < len(MODELS)
    body = {
        "data": [model_info(m) for m in page],
        "has_more": has_more,
        "first_id": page[0][0] if page else None,
        "last_id": page[-1][0] if page else None,
    }
    return Answer.json(200, body, {"request-id": request_id("req_011C", 20)})


def get_model(request: SimRequest, call: Call) -> Answer:
    refused = _version_refusal(request)
    if refused is not None:
        return refused
    wanted = call.match.group(1)
    for entry in MODELS:
        if wanted in (entry[0], entry[3]):
            return Answer.json(200, model_info(entry), {"request-id": request_id("req_011C", 20)})
    return error(404, "not_found_error", f"model: {wanted}")


DIALECT = Dialect(
    slug="anthropic",
    routes=(
        Route("GET", "/v1/models", list_models),
        Route("GET", r"/v1/models/([A-Za-z0-9.\-]+)", get_model),
    ),
    credential=credential,
    refusal=refusal,
    not_found=not_found,
)
