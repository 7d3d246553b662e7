"""Quo webhooks, per workspace (every API key of it sees them, see `accounts`): create under
`/v1/webhooks/{messages,calls,call-summaries,call-transcripts}` (the answer carries the signing
`key`), list, get, delete. There is no update: a change is a delete and a create."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from reconciler.simulator import accounts
from reconciler.simulator.dialect import Call, Route
from reconciler.simulator.quo_api import error
from reconciler.simulator.wire import Answer, SimRequest

EVENTS: dict[str, tuple[str, ...]] = {
    "messages": ("message.received", "message.delivered"),
    "calls": ("call.ringing", "call.completed", "call.recording.completed"),
    "call-summaries": ("call.summary.completed",),
    "call-transcripts": ("call.transcript.completed",),
}


def namespace(key: str) -> str:
    """A workspace's webhooks: every API key of the workspace sees them (see `accounts`)."""
    return f"quo/webhooks/{accounts.account(key)}"


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _bad_request(message: str) -> Answer:
    return error(400, "0800400", "Bad Request", message)


def _not_found() -> Answer:
    return error(404, "0800404", "Not Found", "Webhook not found")


def create_webhook(request: SimRequest, call: Call) -> Answer:
    kind = call.match.group(1)
    body = request.json()
    if not isinstance(body, dict):
        return _bad_request("The request body must be a JSON object")
    url, events, label = body.get("url"), body.get("events"), body.get("label")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return _bad_request("url must be a valid URL")
    if not isinstance(events, list) or not events:
        return _bad_request("events must be a non-empty list")
    unknown = [e for e in events if e not in EVENTS[kind]]
    if unknown:
        return _bad_request(f"events must be one of: {', '.join(EVENTS[kind])}")
    if label is not None and not isinstance(label, str):
        return _bad_request("label must be a string")
    resources = body.get("resourceIds") or ["*"]
    stamp = _stamp(call.state.now())
    webhook: dict[str, Any] = {
        "id": f"WH{secrets.token_hex(12)}",
        "userId": "US" + secrets.token_hex(4),
        "orgId": "OR" + secrets.token_hex(4),
        "label": label,
        "status": "enabled",
        "url": url,
        "key": secrets.token_urlsafe(24),
        "events": list(events),
        "resourceIds": resources,
        "createdAt": stamp,
        "updatedAt": stamp,
        "deletedAt": None,
        "_seq": call.state.next_sequence(),
    }
    call.state.put_record(namespace(call.key or ""), webhook["id"], webhook)
    return Answer.json(201, {"data": public(webhook)})


def public(webhook: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in webhook.items() if k != "_seq"}


def list_webhooks(request: SimRequest, call: Call) -> Answer:
    found = sorted(call.state.records(namespace(call.key or "")), key=lambda w: w["_seq"])
    return Answer.json(200, {"data": [public(w) for w in found]})


def get_webhook(request: SimRequest, call: Call) -> Answer:
    found = call.state.record(namespace(call.key or ""), call.match.group(1))
    return _not_found() if found is None else Answer.json(200, {"data": public(found)})


def delete_webhook(request: SimRequest, call: Call) -> Answer:
    if not call.state.delete_record(namespace(call.key or ""), call.match.group(1)):
        return _not_found()
    return Answer(204)


_WEBHOOK = r"/v1/webhooks/(WH[A-Za-z0-9]+)"

ROUTES = (
    Route("GET", "/v1/webhooks", list_webhooks, limited=True),
    Route(
        "POST",
        r"/v1/webhooks/(messages|calls|call-summaries|call-transcripts)",
        create_webhook,
        limited=True,
    ),
    Route("GET", _WEBHOOK, get_webhook, limited=True),
    Route("DELETE", _WEBHOOK, delete_webhook, limited=True),
)
