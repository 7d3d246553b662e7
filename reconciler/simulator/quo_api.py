"""Quo (OpenPhone): `Authorization: KEY` with no scheme (a `Bearer ` prefix is refused);
errors as `{"message", "code", "status", "docs", "title", "trace"}`."""

from __future__ import annotations

import hashlib

from reconciler.simulator.dialect import Call, Dialect, Route
from reconciler.simulator.state import SimState
from reconciler.simulator.verdict import Outcome
from reconciler.simulator.wire import Answer, SimRequest, network_block, request_id

DOCS = "https://www.quo.com/docs"


def credential(request: SimRequest) -> str | None:
    """The raw header value; a scheme such as `Bearer ` makes it a different (unknown) key."""
    value = (request.header("authorization") or "").strip()
    if not value or " " in value:
        return None
    return value


def error(status: int, code: str, title: str, message: str) -> Answer:
    trace = request_id("", 32)
    body = {
        "message": message,
        "code": code,
        "status": status,
        "docs": DOCS,
        "title": title,
        "trace": trace,
    }
    return Answer.json(status, body, {"x-trace-id": trace})


def refusal(outcome: Outcome, request: SimRequest) -> Answer:
    match outcome:
        case Outcome.RATE_LIMITED:
            return error(429, "0100429", "Too Many Requests", "Rate limit exceeded")
        case Outcome.OUTAGE | Outcome.UNKNOWN_ERROR:
            return error(500, "0100500", "Internal Server Error", "Something went wrong")
        case Outcome.UNAVAILABLE | Outcome.OVERLOADED:
            return error(503, "0100503", "Service Unavailable", "Service unavailable")
        case Outcome.NETBLOCK:
            return network_block()
        case Outcome.FORBIDDEN:
            return error(403, "0100403", "Forbidden", "Not allowed to access this resource")
        case _:
            return error(401, "0100401", "Unauthorized", "Missing or invalid API key")


def not_found(request: SimRequest) -> Answer:
    return error(404, "0100404", "Not Found", "Not found")


RATE_LIMIT = 10  # requests per second per key, shared by every client of the key
DEFAULT_NUMBERS = (
    ("+14155550100", "Main line"),
    ("+14155550101", "Support"),
    ("+15555550100", "Acme support"),  # the number the shipped manifests declare
)


def rate_limit(key: str) -> int:
    return RATE_LIMIT


def workspace_numbers(state: SimState, key: str) -> tuple[tuple[str, str], ...]:
    """(number, name) of the workspace's numbers: set through `/_sim`, or two by default."""
    configured = state.settings.get(("quo-numbers", key))
    return DEFAULT_NUMBERS if configured is None else tuple(configured)


def phone_numbers(request: SimRequest, call: Call) -> Answer:
    key = call.key or ""
    digest = hashlib.sha256(b"simulated-quo-workspace:" + key.encode()).hexdigest()
    numbers = []
    for number, name in workspace_numbers(call.state, key):
        tail = hashlib.sha256(f"{digest}:{number}".encode()).hexdigest()
        digits = number[-10:]
        formatted = (
            f"({digits[:3]}) {digits[3:6]}-{digits[6:]}" if number.startswith("+1") else number
        )
        numbers.append(
            {
                "id": f"PN{tail[:8]}",
                "groupId": f"PG{digest[16:24]}",
                "portRequestId": None,
                "formattedNumber": formatted,
                "forward": None,
                "name": name,
                "number": number,
                "portingStatus": None,
                "symbol": None,
                "users": [
                    {
                        "id": f"US{digest[24:32]}",
                        "email": "owner@example.com",
                        "firstName": "Sam",
                        "lastName": "Owner",
                        "role": "owner",
                    }
                ],
                "restrictions": {
                    "calling": {"CA": "unrestricted", "Intl": "restricted", "US": "unrestricted"},
                    "messaging": {"CA": "unrestricted", "Intl": "restricted", "US": "unrestricted"},
                },
                "createdAt": "2024-03-01T12:00:00.000Z",
                "updatedAt": "2024-03-01T12:00:00.000Z",
            }
        )
    return Answer.json(200, {"data": numbers})


DIALECT = Dialect(
    slug="quo",
    # the health check's route is limited too: the reconciler paces every request with a Quo
    # key (checks, reads, writes) through one bucket, and a 429 here would show it did not
    routes=(Route("GET", "/v1/phone-numbers", phone_numbers, limited=True),),
    credential=credential,
    refusal=refusal,
    not_found=not_found,
    per_key_limit=rate_limit,
)
