"""An OAuth2 test provider: a refresh-token grant at `/oauth/token` and a protected `/v1/me`.

The refresh token decides the answer: `denied` -> `access_denied`, `shortlived` -> an access
token that expires in one second, and the shared key rules (`revoked`, `invalid`, `ratelimited`,
`outage`, run-time revocation...) with OAuth's own error names.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from urllib.parse import unquote_plus

from reconciler.simulator.dialect import Call, Dialect, Route, bearer
from reconciler.simulator.state import IssuedToken
from reconciler.simulator.verdict import Outcome
from reconciler.simulator.wire import Answer, SimRequest, network_block

SLUG = "oauthdemo"
LIFETIME_S = 3600
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(status: int, code: str, description: str, **headers: str) -> Answer:
    body = {"error": code, "error_description": description}
    return Answer.json(status, body, {**NO_STORE, **headers})


def refusal(outcome: Outcome, request: SimRequest) -> Answer:
    """Token-endpoint answers for each kind of refusal."""
    match outcome:
        case Outcome.RATE_LIMITED:
            return oauth_error(429, "slow_down", "Too many requests.", **{"Retry-After": "1"})
        case Outcome.OUTAGE | Outcome.UNKNOWN_ERROR:
            return oauth_error(500, "server_error", "The authorization server failed.")
        case Outcome.UNAVAILABLE | Outcome.OVERLOADED:
            return oauth_error(503, "temporarily_unavailable", "Try again later.")
        case Outcome.NETBLOCK:
            return network_block()
        case Outcome.FORBIDDEN:
            return oauth_error(400, "access_denied", "The resource owner denied the request.")
        case Outcome.MISSING:
            return oauth_error(400, "invalid_request", "Missing parameter: refresh_token.")
        case _:
            return oauth_error(
                400, "invalid_grant", "The refresh token is invalid, expired or revoked."
            )


def not_found(request: SimRequest) -> Answer:
    return Answer.json(404, {"error": "not_found"})


def _field(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0]


def _client(request: SimRequest, form: dict[str, list[str]]) -> tuple[str, str]:
    """Client id and secret from the form, or from HTTP Basic (both are allowed by RFC 6749)."""
    scheme, _, encoded = (request.header("authorization") or "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        return unquote_plus(user), unquote_plus(password)
    return _field(form, "client_id"), _field(form, "client_secret")


def token(request: SimRequest, call: Call) -> Answer:
    form = request.form()
    if _field(form, "grant_type") != "refresh_token":
        return oauth_error(400, "unsupported_grant_type", "Only refresh_token is supported.")
    client_id, client_secret = _client(request, form)
    if not client_id or not client_secret or "invalid" in client_secret.lower():
        return oauth_error(401, "invalid_client", "Client authentication failed.")
    refresh = _field(form, "refresh_token")
    if "denied" in refresh.lower():
        return oauth_error(400, "access_denied", "The resource owner denied the request.")
    outcome = call.state.judge(SLUG, refresh)
    if outcome is not Outcome.SUCCESS:
        return refusal(outcome, request)
    lifetime = 1 if "shortlived" in refresh.lower() else LIFETIME_S
    scope = _field(form, "scope") or "read"
    access = "simat_" + secrets.token_urlsafe(24)
    call.state.issue_token(access, IssuedToken(refresh, time.time() + lifetime, scope))
    body = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "refresh_token": refresh,
        "scope": scope,
    }
    return Answer.json(200, body, NO_STORE)


def me(request: SimRequest, call: Call) -> Answer:
    access = bearer(request)
    issued = call.state.live_token(access) if access else None
    if issued is None:
        return oauth_error(
            401,
            "invalid_token",
            "The access token is invalid or has expired.",
            **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    body = {
        "id": "user_demo",
        "email": "demo@example.com",
        "name": "Demo User",
        "scope": issued.scope,
    }
    return Answer.json(200, body)


DIALECT = Dialect(
    slug=SLUG,
    routes=(
        Route("POST", "/oauth/token", token, judged=False),
        Route("GET", "/v1/me", me, judged=False),
    ),
    credential=lambda request: None,
    refusal=refusal,
    not_found=not_found,
)
