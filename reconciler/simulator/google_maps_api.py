"""Google Maps geocoding: the key as the `key` query parameter; almost every "no" is HTTP 200
with a `status` of `REQUEST_DENIED`, `OVER_QUERY_LIMIT`, `OVER_DAILY_LIMIT` or `UNKNOWN_ERROR`."""

from __future__ import annotations

from reconciler.simulator.dialect import Call, Dialect, Route
from reconciler.simulator.verdict import Outcome
from reconciler.simulator.wire import Answer, SimRequest, network_block

NO_KEY = (
    "You must use an API key to authenticate each request to Google Maps Platform APIs. "
    "For additional information, please refer to http://g.co/dev/maps-no-account"
)
BAD_KEY = "The provided API key is invalid. "
NOT_AUTHORIZED = "This API key is not authorized to use this service or API."
DAILY = (
    "You have exceeded your daily request quota for this API. If you did not set a custom "
    "daily request quota, verify your project has an active billing account: "
    "http://g.co/dev/maps-no-account"
)
RATE = "You have exceeded your rate-limit for this API."

SERVER_ERROR_HTML = (
    "<!DOCTYPE html>\n<html lang=en><meta charset=utf-8><title>Error {code} (Server Error)!!1"
    "</title><p><b>{code}.</b> <ins>That's an error.</ins><p>The server encountered a "
    "temporary error and could not complete your request.<p>Please try again in 30 seconds."
    "  <ins>That's all we know.</ins>\n"
)


def credential(request: SimRequest) -> str | None:
    return request.param("key") or None


def status(code: str, error_message: str | None = None) -> Answer:
    body: dict[str, object] = {"results": [], "status": code}
    if error_message:
        body["error_message"] = error_message
    return Answer.json(200, body)


def server_error(code: int) -> Answer:
    return Answer.text(code, SERVER_ERROR_HTML.format(code=code), html=True)


def refusal(outcome: Outcome, request: SimRequest) -> Answer:
    match outcome:
        case Outcome.MISSING:
            return status("REQUEST_DENIED", NO_KEY)
        case Outcome.RATE_LIMITED:
            return status("OVER_QUERY_LIMIT", RATE)
        case Outcome.DAILY_LIMIT:
            return status("OVER_DAILY_LIMIT", DAILY)
        case Outcome.UNKNOWN_ERROR:
            return status("UNKNOWN_ERROR")
        case Outcome.OUTAGE:
            return server_error(500)
        case Outcome.UNAVAILABLE | Outcome.OVERLOADED:
            return server_error(503)
        case Outcome.NETBLOCK:
            return network_block()
        case Outcome.FORBIDDEN:
            # Google answers a key restricted away from this API with HTTP 200, not 403.
            return status("REQUEST_DENIED", NOT_AUTHORIZED)
        case _:
            return status("REQUEST_DENIED", BAD_KEY)


def not_found(request: SimRequest) -> Answer:
    return Answer.text(404, "Not Found")


def geocode(request: SimRequest, call: Call) -> Answer:
    address = request.param("address") or request.param("latlng") or request.param("place_id")
    if not address and not request.param("components"):
        return status(
            "INVALID_REQUEST",
            "Invalid request. Missing the 'address', "
            "'components', 'latlng' or 'place_id' parameter.",
        )
    if "nowhere" in (address or "").lower():
        return status("ZERO_RESULTS")
    result = {
        "address_components": [
            {
                "long_name": "Mountain View",
                "short_name": "Mountain View",
                "types": ["locality", "political"],
            },
            {"long_name": "United States", "short_name": "US", "types": ["country", "political"]},
        ],
        "formatted_address": "1600 Amphitheatre Pkwy, Mountain View, CA 94043, USA",
        "geometry": {
            "location": {"lat": 37.4224428, "lng": -122.0842467},
            "location_type": "ROOFTOP",
            "viewport": {
                "northeast": {"lat": 37.4239627802915, "lng": -122.0829089197085},
                "southwest": {"lat": 37.4212648197085, "lng": -122.0856068802915},
            },
        },
        "place_id": "ChIJF4Yf2Ry7j4AR__1AkytDyAE",
        "plus_code": {"compound_code": "CWC8+W5 Mountain View, CA", "global_code": "849VCWC8+W5"},
        "types": ["street_address"],
    }
    return Answer.json(200, {"results": [result], "status": "OK"})


DIALECT = Dialect(
    slug="google_maps",
    routes=(Route("GET", "/maps/api/geocode/json", geocode),),
    credential=credential,
    refusal=refusal,
    not_found=not_found,
)
