"""Postmark webhooks (per server: its server tokens) and sender signatures (per account: its
account tokens); see `accounts`.

`/webhooks` takes the server token like every server API. `/senders` takes only the account
token (`X-Postmark-Account-Token`): a server token there is refused as a missing account token.
Ids are integers; sender signatures are created unconfirmed (a person must click Postmark's
e-mail link; the `/_sim` controls stand in for that click).
"""

from __future__ import annotations

from typing import Any

from reconciler.simulator import accounts
from reconciler.simulator.dialect import Call, Route
from reconciler.simulator.postmark_api import error, refusal
from reconciler.simulator.verdict import Outcome
from reconciler.simulator.wire import Answer, SimRequest, request_id

STREAMS = ("outbound", "broadcast", "inbound")
TRIGGERS: dict[str, tuple[str, ...]] = {  # trigger -> its flags besides Enabled
    "Open": ("PostFirstOpenOnly",),
    "Click": (),
    "Delivery": (),
    "Bounce": ("IncludeContent",),
    "SpamComplaint": ("IncludeContent",),
    "SubscriptionChange": (),
}
NO_ACCOUNT_TOKEN = (
    "No Account API token was supplied in the X-Postmark-Account-Token header. Sender "
    "signatures are managed with an account token; a server token cannot manage them."
)
BAD_ACCOUNT_TOKEN = (
    "The Account API Token you provided in the X-Postmark-Account-Token header was invalid. "
    "Please verify that you are using a valid token."
)


def webhooks_namespace(server_token: str) -> str:
    """A server's webhooks: every server token of that server sees them (see `accounts`)."""
    return f"postmark/webhooks/{accounts.account(server_token)}"


def senders_namespace(account_token: str) -> str:
    """An account's sender signatures: every account token of that account sees them."""
    return f"postmark/senders/{accounts.account(account_token)}"


def _ok(status: int, body: Any) -> Answer:
    return Answer.json(status, body, {"X-Request-Id": request_id()})


def _webhook_id(call: Call) -> str:
    return str(int(call.match.group(1)))


# -- webhooks ------------------------------------------------------------------------------------


def triggers(given: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every trigger with every flag, as Postmark answers; ``given`` changes what it names."""
    out: dict[str, Any] = {}
    given = given if isinstance(given, dict) else {}
    for name, flags in TRIGGERS.items():
        base = dict((current or {}).get(name) or {"Enabled": False, **dict.fromkeys(flags, False)})
        change = given.get(name)
        if isinstance(change, dict):
            for flag in ("Enabled", *flags):
                if isinstance(change.get(flag), bool):
                    base[flag] = change[flag]
        out[name] = base
    return out


def _unknown_stream() -> Answer:
    return error(422, 1226, "The message stream for the provided 'ID' was not found.")


def _no_such_webhook() -> Answer:
    return error(404, 1240, "Webhook not found.")


def _valid_url(url: Any) -> bool:
    return isinstance(url, str) and url.startswith(("https://", "http://")) and len(url) > 10


def list_webhooks(request: SimRequest, call: Call) -> Answer:
    stream = request.param("MessageStream")
    if stream is not None and stream not in STREAMS:
        return _unknown_stream()
    found = call.state.records(webhooks_namespace(call.key or ""))
    found = [w for w in found if stream is None or w["MessageStream"] == stream]
    return _ok(200, {"Webhooks": sorted(found, key=lambda w: w["ID"])})


def create_webhook(request: SimRequest, call: Call) -> Answer:
    body = request.json()
    if not isinstance(body, dict):
        return error(422, 0, "The request body is not valid JSON.")
    if not _valid_url(body.get("Url")):
        return error(422, 606, "The webhook URL is not valid.")
    stream = body.get("MessageStream") or "outbound"
    if stream not in STREAMS:
        return _unknown_stream()
    webhook_id = call.state.next_sequence()
    webhook = {
        "ID": webhook_id,
        "Url": body["Url"],
        "MessageStream": stream,
        "HttpAuth": body.get("HttpAuth"),
        "HttpHeaders": body.get("HttpHeaders") or [],
        "Triggers": triggers(body.get("Triggers")),
    }
    call.state.put_record(webhooks_namespace(call.key or ""), str(webhook_id), webhook)
    return _ok(200, webhook)


def get_webhook(request: SimRequest, call: Call) -> Answer:
    found = call.state.record(webhooks_namespace(call.key or ""), _webhook_id(call))
    return _no_such_webhook() if found is None else _ok(200, found)


def edit_webhook(request: SimRequest, call: Call) -> Answer:
    space = webhooks_namespace(call.key or "")
    found = call.state.record(space, _webhook_id(call))
    if found is None:
        return _no_such_webhook()
    body = request.json()
    if not isinstance(body, dict):
        return error(422, 0, "The request body is not valid JSON.")
    if "Url" in body:
        if not _valid_url(body["Url"]):
            return error(422, 606, "The webhook URL is not valid.")
        found["Url"] = body["Url"]
    if "HttpAuth" in body:
        found["HttpAuth"] = body["HttpAuth"]
    if "HttpHeaders" in body:
        found["HttpHeaders"] = body["HttpHeaders"] or []
    if "Triggers" in body:
        found["Triggers"] = triggers(body["Triggers"], found["Triggers"])
    call.state.put_record(space, str(found["ID"]), found)
    return _ok(200, found)


def delete_webhook(request: SimRequest, call: Call) -> Answer:
    webhook_id = _webhook_id(call)
    if not call.state.delete_record(webhooks_namespace(call.key or ""), webhook_id):
        return _no_such_webhook()
    return _ok(200, {"ErrorCode": 0, "Message": f"Webhook {webhook_id} removed."})


# -- sender signatures ---------------------------------------------------------------------------


def _account_token(request: SimRequest, call: Call) -> tuple[str | None, Answer | None]:
    """The account token, or the refusal: none given (a server token does not count) or bad."""
    token = request.header("x-postmark-account-token")
    if not token:
        return None, error(401, 10, NO_ACCOUNT_TOKEN)
    outcome = call.state.judge("postmark", token)
    if outcome in (Outcome.INVALID, Outcome.REVOKED, Outcome.EXPIRED, Outcome.MALFORMED):
        return None, error(401, 10, BAD_ACCOUNT_TOKEN)
    if outcome is not Outcome.SUCCESS:
        return None, refusal(outcome, request)
    return token, None


def signature(email: str, name: str, reply_to: str, signature_id: int) -> dict[str, Any]:
    """A full sender signature as the create and get answers show it."""
    domain = email.rpartition("@")[2].lower()
    return {
        "ID": signature_id,
        "Domain": domain,
        "EmailAddress": email,
        "ReplyToEmailAddress": reply_to,
        "Name": name,
        "Confirmed": False,
        "SPFVerified": False,
        "SPFHost": domain,
        "SPFTextValue": "v=spf1 a mx include:spf.mtasv.net ~all",
        "DKIMVerified": False,
        "WeakDKIM": False,
        "DKIMHost": "",
        "DKIMTextValue": "",
        "DKIMPendingHost": f"20260101000000pm._domainkey.{domain}",
        "DKIMPendingTextValue": "k=rsa;p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCsimulated",
        "DKIMRevokedHost": "",
        "DKIMRevokedTextValue": "",
        "SafeToRemoveRevokedKeyFromDNS": False,
        "DKIMUpdateStatus": "Pending",
        "ReturnPathDomain": "",
        "ReturnPathDomainVerified": False,
        "ReturnPathDomainCNAMEValue": "pm.mtasv.net",
        "ConfirmationPersonalNote": None,
    }


LIST_FIELDS = ("ID", "Domain", "EmailAddress", "ReplyToEmailAddress", "Name", "Confirmed")


def list_senders(request: SimRequest, call: Call) -> Answer:
    token, refused = _account_token(request, call)
    if refused is not None:
        return refused
    count, offset = request.param("count") or "", request.param("offset") or ""
    if not (count.isdigit() and offset.isdigit()) or not 1 <= int(count) <= 500:
        return error(422, 0, "The 'count' and 'offset' query parameters are required.")
    found = sorted(call.state.records(senders_namespace(token or "")), key=lambda s: s["ID"])
    page = found[int(offset) : int(offset) + int(count)]
    items = [{k: s[k] for k in LIST_FIELDS} for s in page]
    return _ok(200, {"TotalCount": len(found), "SenderSignatures": items})


def create_sender(request: SimRequest, call: Call) -> Answer:
    token, refused = _account_token(request, call)
    if refused is not None:
        return refused
    body = request.json()
    email = body.get("FromEmail") if isinstance(body, dict) else None
    name = body.get("Name") if isinstance(body, dict) else None
    if not isinstance(email, str) or "@" not in email or not isinstance(name, str) or not name:
        return error(422, 400, "FromEmail and Name are required.")
    space = senders_namespace(token or "")
    if any(s["EmailAddress"].lower() == email.lower() for s in call.state.records(space)):
        return error(422, 504, "This signature already exists.")
    assert isinstance(body, dict)
    created = signature(email, name, body.get("ReplyToEmail") or "", call.state.next_sequence())
    call.state.put_record(space, str(created["ID"]), created)
    return _ok(200, created)


def _sender(request: SimRequest, call: Call) -> tuple[str, dict[str, Any] | None, Answer | None]:
    token, refused = _account_token(request, call)
    if refused is not None:
        return "", None, refused
    space = senders_namespace(token or "")
    found = call.state.record(space, str(int(call.match.group(1))))
    if found is None:
        return space, None, error(404, 501, "Sender signature not found.")
    return space, found, None


def get_sender(request: SimRequest, call: Call) -> Answer:
    _, found, refused = _sender(request, call)
    return refused if refused is not None else _ok(200, found)


def edit_sender(request: SimRequest, call: Call) -> Answer:
    space, found, refused = _sender(request, call)
    if refused is not None or found is None:
        return refused or error(404, 501, "Sender signature not found.")
    body = request.json()
    if not isinstance(body, dict) or not isinstance(body.get("Name"), str) or not body["Name"]:
        return error(422, 400, "Name is required.")
    found["Name"] = body["Name"]
    if isinstance(body.get("ReplyToEmail"), str):
        found["ReplyToEmailAddress"] = body["ReplyToEmail"]
    call.state.put_record(space, str(found["ID"]), found)
    return _ok(200, found)


def delete_sender(request: SimRequest, call: Call) -> Answer:
    space, found, refused = _sender(request, call)
    if refused is not None or found is None:
        return refused or error(404, 501, "Sender signature not found.")
    call.state.delete_record(space, str(found["ID"]))
    return _ok(200, {"ErrorCode": 0, "Message": f"Signature {found['EmailAddress']} removed."})


_WEBHOOK = r"/webhooks/([0-9]+)"
_SENDER = r"/senders/([0-9]+)"

ROUTES = (
    Route("GET", "/webhooks", list_webhooks, limited=True),
    Route("POST", "/webhooks", create_webhook, limited=True),
    Route("GET", _WEBHOOK, get_webhook, limited=True),
    Route("PUT", _WEBHOOK, edit_webhook, limited=True),
    Route("DELETE", _WEBHOOK, delete_webhook, limited=True),
    Route("GET", "/senders", list_senders, judged=False),
    Route("POST", "/senders", create_sender, judged=False),
    Route("GET", _SENDER, get_sender, judged=False),
    Route("PUT", _SENDER, edit_sender, judged=False),
    Route("DELETE", _SENDER, delete_sender, judged=False),
)
