"""Stripe webhook endpoints, per account and mode (every key of the account sees them, see
`accounts`; test and live mode are separate sets): create (the `whsec_` secret only in this
answer), list with `limit` and `starting_after`/`ending_before` (default 10, newest first), get,
update, delete, and `Idempotency-Key` replay of POSTs for 24 hours (per account and mode)."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from reconciler.simulator.dialect import Call, Route
from reconciler.simulator.stripe_api import account_id, error, headers, livemode
from reconciler.simulator.wire import Answer, SimRequest

KIND = "webhook_endpoints"
MAX_METADATA_KEYS = 50


def scope(key: str) -> str:
    """The key's account and mode: what its endpoints and idempotency keys belong to."""
    return f"{account_id(key)}/{'live' if livemode(key) else 'test'}"


def namespace(key: str) -> str:
    """Where a key's endpoints are kept (the `/_sim` controls use the same)."""
    return f"stripe/{KIND}/{scope(key)}"


def _event_list(form: dict[str, list[str]]) -> list[str] | None:
    """`enabled_events[]=a` or `enabled_events[0]=a` (the SDK's indexed form), in order."""
    found: list[tuple[int, int, str]] = []
    for name, values in form.items():
        m = re.fullmatch(r"enabled_events\[(\d*)\]", name)
        if m:
            found += [(int(m.group(1) or 0), i, v) for i, v in enumerate(values)]
    return [v for _, _, v in sorted(found)] if found else None


def _metadata(form: dict[str, list[str]]) -> dict[str, str] | None:
    """`metadata[KEY]=VALUE` pairs (an empty value means: unset KEY), or None when absent."""
    found = {
        m.group(1): values[-1]
        for name, values in form.items()
        if (m := re.fullmatch(r"metadata\[([^\]]+)\]", name))
    }
    if not found and form.get("metadata") == [""]:
        return {}
    return found if found or "metadata" in form else None


def _invalid(request: SimRequest, param: str, message: str, code: str | None = None) -> Answer:
    if code is None:
        return error(400, request, type="invalid_request_error", param=param, message=message)
    return error(
        400, request, type="invalid_request_error", code=code, param=param, message=message
    )


def _no_such_endpoint(request: SimRequest, endpoint_id: str, param: str = "id") -> Answer:
    status = 404 if param == "id" else 400
    return error(
        status,
        request,
        type="invalid_request_error",
        code="resource_missing",
        param=param,
        message=f"No such webhook endpoint: '{endpoint_id}'",
    )


def public(endpoint: dict[str, Any]) -> dict[str, Any]:
    """The endpoint as every answer but the create shows it: no secret, no internal order."""
    return {k: v for k, v in endpoint.items() if k not in ("secret", "_seq")}


def _newest_first(call: Call) -> list[dict[str, Any]]:
    found = call.state.records(namespace(call.key or ""))
    return sorted(found, key=lambda e: -int(e.get("_seq", 0)))


def list_webhooks(request: SimRequest, call: Call) -> Answer:
    raw = request.param("limit") or "10"
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        return _invalid(
            request,
            "limit",
            "Invalid integer: limit must be between 1 and 100",
            "parameter_invalid_integer",
        )
    limit = int(raw)
    endpoints = _newest_first(call)
    ids = [e["id"] for e in endpoints]
    after, before = request.param("starting_after"), request.param("ending_before")
    if after is not None:
        if after not in ids:
            return _no_such_endpoint(request, after, "starting_after")
        start = ids.index(after) + 1
        page, has_more = endpoints[start : start + limit], start + limit < len(endpoints)
    elif before is not None:
        if before not in ids:
            return _no_such_endpoint(request, before, "ending_before")
        end = ids.index(before)
        page, has_more = endpoints[max(end - limit, 0) : end], end - limit > 0
    else:
        page, has_more = endpoints[:limit], limit < len(endpoints)
    body = {
        "object": "list",
        "data": [public(e) for e in page],
        "has_more": has_more,
        "url": "/v1/webhook_endpoints",
    }
    return Answer.json(200, body, headers(request))


def _fingerprint(request: SimRequest) -> str:
    form = sorted((k, v) for k, values in request.form().items() for v in values)
    return hashlib.sha256(repr((request.method, request.path, form)).encode()).hexdigest()


def idempotent(handler: Any) -> Any:
    """Replay the saved answer of a POST whose `Idempotency-Key` was seen in the last 24 h with
    the same parameters; refuse the key with other parameters (Stripe's `idempotency_error`)."""

    def wrapped(request: SimRequest, call: Call) -> Answer:
        key = request.header("idempotency-key")
        if not key:
            return handler(request, call)
        if len(key) > 255:
            return _invalid(
                request, "Idempotency-Key", "Idempotency-Key must be at most 255 characters"
            )
        account = scope(call.key or "")
        saved = call.state.replay(account, key)
        fingerprint = _fingerprint(request)
        if saved is not None:
            if saved[0] != fingerprint:
                return error(
                    400,
                    request,
                    type="idempotency_error",
                    message=(
                        "Keys for idempotent requests can only be used with the same parameters "
                        "they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request."
                    ),
                )
            answer: Answer = saved[1]
            return Answer.json(
                answer.status, answer.body, {**answer.headers, "Idempotent-Replayed": "true"}
            )
        answer = handler(request, call)
        if answer.status < 500 and answer.status != 429:
            call.state.save_replay(account, key, fingerprint, answer)
        return answer

    return wrapped


def _apply_metadata(
    request: SimRequest, current: dict[str, str], changes: dict[str, str]
) -> dict[str, str] | Answer:
    merged = dict(current) if changes else {}
    for name, value in changes.items():
        if value:
            merged[name] = value
        else:
            merged.pop(name, None)
    if len(merged) > MAX_METADATA_KEYS:
        return _invalid(request, "metadata", "You can have at most 50 keys in metadata.")
    return merged


def create_webhook(request: SimRequest, call: Call) -> Answer:
    form = request.form()
    url = (form.get("url") or [""])[0]
    events = _event_list(form)
    if not url:
        return _invalid(request, "url", "Missing required param: url.", "parameter_missing")
    if not events:
        return _invalid(
            request,
            "enabled_events",
            "Missing required param: enabled_events.",
            "parameter_missing",
        )
    key = call.key or ""
    metadata = _apply_metadata(request, {}, _metadata(form) or {})
    if isinstance(metadata, Answer):
        return metadata
    sequence = call.state.next_sequence()
    endpoint_id = "we_1" + secrets.token_hex(12)
    endpoint: dict[str, Any] = {
        "id": endpoint_id,
        "object": "webhook_endpoint",
        "api_version": next(iter(form.get("api_version") or []), None),
        "application": None,
        "created": int(call.state.now()),
        "description": (form.get("description") or [""])[0] or None,
        "enabled_events": events,
        "livemode": livemode(key),
        "metadata": metadata,
        "status": "enabled",
        "url": url,
        "secret": "whsec_" + secrets.token_hex(16),
        "_seq": sequence,
    }
    call.state.put_record(namespace(key), endpoint_id, endpoint)
    return Answer.json(200, public(endpoint) | {"secret": endpoint["secret"]}, headers(request))


def get_webhook(request: SimRequest, call: Call) -> Answer:
    endpoint_id = call.match.group(1)
    found = call.state.record(namespace(call.key or ""), endpoint_id)
    if found is None:
        return _no_such_endpoint(request, endpoint_id)
    return Answer.json(200, public(found), headers(request))


def update_webhook(request: SimRequest, call: Call) -> Answer:
    endpoint_id = call.match.group(1)
    space = namespace(call.key or "")
    found = call.state.record(space, endpoint_id)
    if found is None:
        return _no_such_endpoint(request, endpoint_id)
    form = request.form()
    if "api_version" in form:
        return _invalid(request, "api_version", "Received unknown parameter: api_version")
    if form.get("url"):
        found["url"] = form["url"][0]
    events = _event_list(form)
    if events:
        found["enabled_events"] = events
    if form.get("disabled"):
        found["status"] = "disabled" if form["disabled"][0] == "true" else "enabled"
    if "description" in form:
        found["description"] = form["description"][0] or None
    changes = _metadata(form)
    if changes is not None:
        metadata = _apply_metadata(request, found.get("metadata") or {}, changes)
        if isinstance(metadata, Answer):
            return metadata
        found["metadata"] = metadata
    call.state.put_record(space, endpoint_id, found)
    return Answer.json(200, public(found), headers(request))


def delete_webhook(request: SimRequest, call: Call) -> Answer:
    endpoint_id = call.match.group(1)
    if not call.state.delete_record(namespace(call.key or ""), endpoint_id):
        return _no_such_endpoint(request, endpoint_id)
    body = {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}
    return Answer.json(200, body, headers(request))


_ENDPOINT = r"/v1/webhook_endpoints/([A-Za-z0-9_]+)"

ROUTES = (
    Route("GET", "/v1/webhook_endpoints", list_webhooks, limited=True),
    Route("POST", "/v1/webhook_endpoints", idempotent(create_webhook), limited=True),
    Route("GET", _ENDPOINT, get_webhook, limited=True),
    Route("POST", _ENDPOINT, idempotent(update_webhook), limited=True),
    Route("DELETE", _ENDPOINT, delete_webhook, limited=True),
)
