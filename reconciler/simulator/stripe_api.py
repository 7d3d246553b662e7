"""Stripe: `Authorization: Bearer sk_...` (or HTTP Basic with the key as user name), errors as
`{"error": {"type", "code", "message"}}`, `Request-Id` and `Stripe-Should-Retry` headers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import time
from typing import Any

from reconciler.simulator.dialect import Call, Dialect, Route, bearer
from reconciler.simulator.verdict import Outcome
from reconciler.simulator.wire import Answer, SimRequest, network_block, request_id

API_VERSION = "2024-06-20"
DOCS = "https://stripe.com/docs/error-codes"


def credential(request: SimRequest) -> str | None:
    """Bearer, or Basic with the key as user name, as the real API accepts both."""
    token = bearer(request)
    if token is not None:
        return token
    scheme, _, encoded = (request.header("authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user or None


def masked(key: str) -> str:
    """The key as Stripe echoes it in errors: prefix, stars, last four characters."""
    prefix = re.match(r"^(sk|rk|pk)_(test|live)_", key)
    head = prefix.group(0) if prefix else ""
    tail = key[-4:] if len(key) - len(head) > 12 else ""  # a short key is not echoed at all
    return head + "*" * max(len(key) - len(head) - len(tail), 4) + tail


def headers(request: SimRequest, *, retry: bool | None = None) -> dict[str, str]:
    out = {
        "Request-Id": request_id("req_", 14),
        "Stripe-Version": request.header("stripe-version") or API_VERSION,
    }
    if retry is not None:
        out["Stripe-Should-Retry"] = "true" if retry else "false"
    return out


def error(
    status: int,
    request: SimRequest,
    *,
    retry: bool | None = None,
    retry_after: str | None = None,
    **fields: str,
) -> Answer:
    extra = headers(request, retry=retry)
    if retry_after is not None:
        extra["Retry-After"] = retry_after
    return Answer.json(status, {"error": fields}, extra)


def refusal(outcome: Outcome, request: SimRequest) -> Answer:
    key = credential(request) or ""
    match outcome:
        case Outcome.MISSING:
            return error(
                401,
                request,
                type="invalid_request_error",
                message=(
                    "You did not provide an API key. You need to provide your API key in the "
                    "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                    "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
                    "details, or we can help at https://support.stripe.com/."
                ),
            )
        case Outcome.RATE_LIMITED:
            return error(
                429,
                request,
                retry=True,
                retry_after="1",
                type="invalid_request_error",
                code="rate_limit",
                doc_url=f"{DOCS}/rate-limit",
                message=(
                    "Request rate limit exceeded. Learn more about rate limits here "
                    "https://stripe.com/docs/rate-limits."
                ),
            )
        case Outcome.OUTAGE | Outcome.UNKNOWN_ERROR | Outcome.UNAVAILABLE | Outcome.OVERLOADED:
            status = 500 if outcome in (Outcome.OUTAGE, Outcome.UNKNOWN_ERROR) else 503
            return error(
                status,
                request,
                retry=True,
                type="api_error",
                message="Sorry, something went wrong. We've already been notified of the problem.",
            )
        case Outcome.NETBLOCK:
            return network_block()
        case Outcome.FORBIDDEN:
            return error(
                403,
                request,
                type="invalid_request_error",
                message=(
                    f"The provided key '{masked(key)}' does not have the required permissions "
                    f"for this endpoint on account '{account_id(key)}'. Having the "
                    "'rak_accounts_kyc_basic_read' permission would allow this request to "
                    "continue."
                ),
            )
        case Outcome.EXPIRED:
            return error(
                401,
                request,
                type="invalid_request_error",
                code="api_key_expired",
                doc_url=f"{DOCS}/api-key-expired",
                message=f"Expired API Key provided: {masked(key)}",
            )
        case _:
            return error(
                401,
                request,
                type="invalid_request_error",
                message=f"Invalid API Key provided: {masked(key)}",
            )


def not_found(request: SimRequest) -> Answer:
    return error(
        404,
        request,
        type="invalid_request_error",
        message=(
            f"Unrecognized request URL ({request.method}: {request.path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/."
        ),
    )


def account_id(key: str) -> str:
    """A stable account id for a key (one account per key, as in Stripe)."""
    digest = hashlib.sha256(b"simulated-stripe-account:" + key.encode()).hexdigest()
    return "acct_1" + digest[:15].upper()


def account(request: SimRequest, call: Call) -> Answer:
    key = call.key or ""
    acct = account_id(key)
    body = {
        "id": acct,
        "object": "account",
        "business_profile": {"name": "Simulated Co", "url": "https://example.com"},
        "business_type": "company",
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "country": "US",
        "created": 1700000000,
        "default_currency": "usd",
        "details_submitted": True,
        "email": "billing@example.com",
        "metadata": {},
        "payouts_enabled": True,
        "settings": {"dashboard": {"display_name": "Simulated Co", "timezone": "Etc/UTC"}},
        "type": "standard",
    }
    return Answer.json(200, body, headers(request))


def _event_list(form: dict[str, list[str]]) -> list[str] | None:
    """`enabled_events[]=a` or `enabled_events[0]=a` (the SDK's indexed form), in order."""
    found: list[tuple[int, int, str]] = []
    for name, values in form.items():
        m = re.fullmatch(r"enabled_events\[(\d*)\]", name)
        if m:
            found += [(int(m.group(1) or 0), i, v) for i, v in enumerate(values)]
    return [v for _, _, v in sorted(found)] if found else None


def _missing_param(request: SimRequest, param: str) -> Answer:
    return error(
        400,
        request,
        type="invalid_request_error",
        code="parameter_missing",
        param=param,
        message=f"Missing required param: {param}.",
    )


def _no_such_endpoint(request: SimRequest, endpoint_id: str) -> Answer:
    return error(
        404,
        request,
        type="invalid_request_error",
        code="resource_missing",
        param="id",
        message=f"No such webhook endpoint: '{endpoint_id}'",
    )


def _public(endpoint: dict[str, Any]) -> dict[str, Any]:
    """The endpoint without its signing secret, which Stripe shows only at creation."""
    return {k: v for k, v in endpoint.items() if k != "secret"}


def list_webhooks(request: SimRequest, call: Call) -> Answer:
    data = sorted(call.state.records(account_id(call.key or "")), key=lambda e: -e["created"])
    body = {
        "object": "list",
        "data": [_public(e) for e in data],
        "has_more": False,
        "url": "/v1/webhook_endpoints",
    }
    return Answer.json(200, body, headers(request))


def create_webhook(request: SimRequest, call: Call) -> Answer:
    form = request.form()
    url = (form.get("url") or [""])[0]
    events = _event_list(form)
    if not url:
        return _missing_param(request, "url")
    if not events:
        return _missing_param(request, "enabled_events")
    key = call.key or ""
    endpoint_id = "we_1" + secrets.token_hex(12)
    endpoint: dict[str, Any] = {
        "id": endpoint_id,
        "object": "webhook_endpoint",
        "api_version": None,
        "application": None,
        "created": int(time.time()),
        "description": (form.get("description") or [""])[0] or None,
        "enabled_events": events,
        "livemode": key.startswith(("sk_live_", "rk_live_")),
        "metadata": {},
        "status": "enabled",
        "url": url,
        "secret": "whsec_" + secrets.token_hex(16),
    }
    call.state.put_record(account_id(key), endpoint_id, endpoint)
    return Answer.json(200, endpoint, headers(request))


def get_webhook(request: SimRequest, call: Call) -> Answer:
    endpoint_id = call.match.group(1)
    found = call.state.record(account_id(call.key or ""), endpoint_id)
    if found is None:
        return _no_such_endpoint(request, endpoint_id)
    return Answer.json(200, _public(found), headers(request))


def update_webhook(request: SimRequest, call: Call) -> Answer:
    endpoint_id = call.match.group(1)
    namespace = account_id(call.key or "")
    found = call.state.record(namespace, endpoint_id)
    if found is None:
        return _no_such_endpoint(request, endpoint_id)
    form = request.form()
    if form.get("url"):
        found["url"] = form["url"][0]
    events = _event_list(form)
    if events:
        found["enabled_events"] = events
    if form.get("disabled"):
        found["status"] = "disabled" if form["disabled"][0] == "true" else "enabled"
    if form.get("description"):
        found["description"] = form["description"][0]
    call.state.put_record(namespace, endpoint_id, found)
    return Answer.json(200, _public(found), headers(request))


def delete_webhook(request: SimRequest, call: Call) -> Answer:
    endpoint_id = call.match.group(1)
    if not call.state.delete_record(account_id(call.key or ""), endpoint_id):
        return _no_such_endpoint(request, endpoint_id)
    body = {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}
    return Answer.json(200, body, headers(request))


_ENDPOINT = r"/v1/webhook_endpoints/([A-Za-z0-9_]+)"

DIALECT = Dialect(
    slug="stripe",
    routes=(
        Route("GET", "/v1/account", account),
        Route("GET", "/v1/webhook_endpoints", list_webhooks),
        Route("POST", "/v1/webhook_endpoints", create_webhook),
        Route("GET", _ENDPOINT, get_webhook),
        Route("POST", _ENDPOINT, update_webhook),
        Route("DELETE", _ENDPOINT, delete_webhook),
    ),
    credential=credential,
    refusal=refusal,
    not_found=not_found,
)
