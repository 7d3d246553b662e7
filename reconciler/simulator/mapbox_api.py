"""Mapbox: the token as the `access_token` query parameter; a bad token is HTTP 200 with
`code` `TokenInvalid`/`TokenMalformed`/`TokenExpired`/`TokenRevoked`; 429 carries
`X-Rate-Limit-Reset` in epoch seconds."""

from __future__ import annotations

import base64
import binascii
import json
import time

from reconciler.simulator.dialect import Call, Dialect, Route
from reconciler.simulator.verdict import Outcome
from reconciler.simulator.wire import Answer, SimRequest, network_block

DEFAULT_USER = "simulated-user"


def credential(request: SimRequest) -> str | None:
    return request.param("access_token") or None


def message(status: int, text: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer.json(status, {"message": text}, headers)


def token_code(code: str) -> Answer:
    return Answer.json(200, {"code": code})


def refusal(outcome: Outcome, request: SimRequest) -> Answer:
    match outcome:
        case Outcome.MISSING:
            return message(401, "Not Authorized - No Token")
        case Outcome.RATE_LIMITED:
            reset = str(int(time.time()) + 1)
            limits = {"X-Rate-Limit-Limit": "100", "X-Rate-Limit-Interval": "60"}
            return message(429, "Too Many Requests", {**limits, "X-Rate-Limit-Reset": reset})
        case Outcome.OUTAGE | Outcome.UNKNOWN_ERROR:
            return message(500, "Internal Server Error")
        case Outcome.UNAVAILABLE | Outcome.OVERLOADED:
            return message(503, "Service Unavailable")
        case Outcome.NETBLOCK:
            return network_block()
        case Outcome.FORBIDDEN:
            return message(403, "Forbidden")
        case Outcome.EXPIRED:
            return token_code("TokenExpired")
        case Outcome.REVOKED:
            return token_code("TokenRevoked")
        case Outcome.MALFORMED:
            return token_code("TokenMalformed")
        case _:
            return token_code("TokenInvalid")


def not_found(request: SimRequest) -> Answer:
    return message(404, "Not Found")


def token_user(token: str) -> str:
    """The user a Mapbox token names in its middle part (`pk.<base64 JSON {"u": user}>.sig`)."""
    parts = token.split(".")
    if len(parts) < 2:
        return DEFAULT_USER
    encoded = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        payload = json.loads(base64.urlsafe_b64decode(encoded))
    except (binascii.Error, ValueError):
        return DEFAULT_USER
    user = payload.get("u") if isinstance(payload, dict) else None
    return user if isinstance(user, str) and user else DEFAULT_USER


def tokens(request: SimRequest, call: Call) -> Answer:
    key = call.key or ""
    usage = key.split(".", 1)[0] if key[:3] in ("pk.", "sk.", "tk.") else "pk"
    body = {
        "code": "TokenValid",
        "token": {
            "usage": usage,
            "user": token_user(key),
            "authorization": "default",
            "client": "api",
            "scopes": ["styles:tiles", "styles:read", "fonts:read", "datasets:read"],
            "created": "2024-01-15T10:00:00.000Z",
        },
    }
    return Answer.json(200, body)


DIALECT = Dialect(
    slug="mapbox",
    routes=(Route("GET", "/tokens/v2", tokens),),
    credential=credential,
    refusal=refusal,
    not_found=not_found,
)
