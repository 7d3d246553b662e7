"""Geoapify: the key as the `apiKey` query parameter; errors as
`{"statusCode", "error", "message"}`."""

from __future__ import annotations

from reconciler.simulator.dialect import Call, Dialect, Route
from reconciler.simulator.verdict import Outcome
from reconciler.simulator.wire import Answer, SimRequest, network_block


def credential(request: SimRequest) -> str | None:
    return request.param("apiKey") or None


def error(status: int, name: str, message: str) -> Answer:
    return Answer.json(status, {"statusCode": status, "error": name, "message": message})


def refusal(outcome: Outcome, request: SimRequest) -> Answer:
    match outcome:
        case Outcome.RATE_LIMITED:
            return error(429, "Too Many Requests", "Too many requests. Please slow down.")
        case Outcome.OUTAGE | Outcome.UNKNOWN_ERROR:
            return error(500, "Internal Server Error", "An internal server error occurred")
        case Outcome.UNAVAILABLE | Outcome.OVERLOADED:
            return error(503, "Service Unavailable", "Service temporarily unavailable")
        case Outcome.NETBLOCK:
            return network_block()
        case Outcome.FORBIDDEN:
            return error(403, "Forbidden", "The apiKey is not allowed to access this API")
        case _:
            return error(401, "Unauthorized", "Invalid apiKey")


def not_found(request: SimRequest) -> Answer:
    return error(404, "Not Found", "Not Found")


def ipinfo(request: SimRequest, call: Call) -> Answer:
    ip = request.param("ip") or request.client_ip
    body = {
        "city": {"name": "Mountain View", "names": {"en": "Mountain View"}},
        "continent": {"code": "NA", "name": "North America", "names": {"en": "North America"}},
        "country": {
            "iso_code": "US",
            "name": "United States",
            "names": {"en": "United States"},
            "capital": "Washington D.C.",
            "currency": "USD",
            "flag": "🇺🇸",
            "languages": [{"iso_code": "en", "name": "English"}],
        },
        "location": {"latitude": 37.386, "longitude": -122.0838},
        "subdivisions": [{"iso_code": "CA", "names": {"en": "California"}}],
        "state": {"name": "California"},
        "ip": ip,
    }
    return Answer.json(200, body)


DIALECT = Dialect(
    slug="geoapify",
    routes=(Route("GET", "/v1/ipinfo", ipinfo),),
    credential=credential,
    refusal=refusal,
    not_found=not_found,
)
