"""Postmark: `X-Postmark-Server-Token: KEY`, errors as `{"ErrorCode", "Message"}`.

The success body of `GET /server` carries every field of the real Server object, because the
official SDK (postmark-python) validates it with a strict pydantic model.
"""

from __future__ import annotations

import hashlib

from reconciler.simulator import accounts
from reconciler.simulator.dialect import Call, Dialect, Route
from reconciler.simulator.verdict import Outcome
from reconciler.simulator.wire import Answer, SimRequest, network_block, request_id

BAD_TOKEN = (
    "The Server API Token you provided in the X-Postmark-Server-Token header was invalid. "
    "Please verify that you are using a valid token."
)
NO_TOKEN = (
    "No Account or Server API tokens were supplied in the HTTP headers. Please add a header "
    "for either X-Postmark-Server-Token or X-Postmark-Account-Token."
)


def credential(request: SimRequest) -> str | None:
    return request.header("x-postmark-server-token") or None


def error(status: int, code: int, message: str) -> Answer:
    return Answer.json(
        status, {"ErrorCode": code, "Message": message}, {"X-Request-Id": request_id()}
    )


def refusal(outcome: Outcome, request: SimRequest) -> Answer:
    match outcome:
        case Outcome.MISSING:
            return error(401, 10, NO_TOKEN)
        case Outcome.RATE_LIMITED:
            return error(429, 429, "Rate limit exceeded. Please slow down your requests.")
        case Outcome.OUTAGE | Outcome.UNKNOWN_ERROR:
            return error(500, 0, "Internal server error.")
        case Outcome.UNAVAILABLE | Outcome.OVERLOADED:
            return Answer.text(503, "Service Unavailable")
        case Outcome.NETBLOCK:
            return network_block()
        case Outcome.FORBIDDEN:
            return error(403, 10, BAD_TOKEN)
        case _:
            return error(401, 10, BAD_TOKEN)


def not_found(request: SimRequest) -> Answer:
    return Answer.text(404, "Not Found")


def server(request: SimRequest, call: Call) -> Answer:
    key = call.key or ""
    server_of_key = accounts.account(key)  # a regenerated token answers for the same server
    digest = hashlib.sha256(b"simulated-postmark-server:" + server_of_key.encode()).hexdigest()
    server_id = int(digest[:6], 16)
    inbound_hash = digest[6:38]
    body = {
        "ID": server_id,
        "Name": "Simulated Server",
        "ApiTokens": [],  # never echo the token back
        "Color": "Blue",
        "SmtpApiActivated": True,
        "RawEmailEnabled": False,
        "DeliveryType": "Sandbox" if "sandbox" in key.lower() else "Live",
        "ServerLink": f"https://account.postmarkapp.com/servers/{server_id}/streams",
        "InboundAddress": f"{inbound_hash}@inbound.postmarkapp.com",
        "InboundHookUrl": "",
        "BounceHookUrl": "",
        "OpenHookUrl": "",
        "DeliveryHookUrl": "",
        "PostFirstOpenOnly": False,
        "InboundDomain": "",
        "InboundHash": inbound_hash,
        "InboundSpamThreshold": 5,
        "TrackOpens": False,
        "TrackLinks": "None",
        "IncludeBounceContentInHook": True,
        "ClickHookUrl": "",
        "EnableSmtpApiErrorHooks": False,
    }
    return Answer.json(200, body, {"X-Request-Id": request_id()})


DIALECT = Dialect(
    slug="postmark",
    routes=(Route("GET", "/server", server),),
    credential=credential,
    refusal=refusal,
    not_found=not_found,
)
