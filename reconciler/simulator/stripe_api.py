"""Stripe: `Authorization: Bearer sk_...` (or HTTP Basic with the key as user name), errors as
`{"error": {"type", "code", "message"}}`, `Request-Id` and `Stripe-Should-Retry` headers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re

from reconciler.simulator import accounts
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
    """The id of the key's account: the ``acct_<ID>`` the key names (so a rolled key keeps its
    account, see `accounts`), else a stable id of the key's own account."""
    named = accounts.named_account(key)
    if named is not None:
        return named
    digest = hashlib.sha256(b"simulated-stripe-account:" + key.encode()).hexdigest()
    return "acct_1" + digest[:15].upper()


def livemode(key: str) -> bool:
    """Live or test mode, from the key's prefix (anything unrecognized is test mode)."""
    return key.startswith(("sk_live_", "rk_live_"))


def rate_limit(key: str) -> int:
    """Requests per second: 100 in live mode, 25 in test mode (Stripe's documented limits)."""
    return 100 if livemode(key) else 25


def throttled(request: SimRequest, wait: float) -> Answer:
    return error(
        429,
        request,
        retry=True,
        retry_after=str(max(1, math.ceil(wait))),
        type="invalid_request_error",
        code="rate_limit",
        doc_url=f"{DOCS}/rate-limit",
        message=(
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits."
        ),
    )


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


DIALECT = Dialect(
    slug="stripe",
    routes=(Route("GET", "/v1/account", account),),
    credential=credential,
    refusal=refusal,
    not_found=not_found,
    per_key_limit=rate_limit,
    throttled=throttled,
)
