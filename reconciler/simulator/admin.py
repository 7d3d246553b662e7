"""The simulator's own endpoints under `/_sim`: revoke and restore keys, read and reset stats,
and change the providers' objects behind the tool's back (see `controls`).

A key sent here is held in memory only and never written back in an answer or a log line.

    POST /_sim/objects         {"provider", "kind", "key"}                 -> {"data": [...]}
    POST /_sim/objects/seed    {"provider", "kind", "key", "body": {...}}  -> the created object
    POST /_sim/objects/change  {"provider", "kind", "key", "id", "fields": {...}}
    POST /_sim/objects/delete  {"provider", "kind", "key", "id"}
    POST /_sim/quo/phone-numbers  {"key", "numbers": [{"number", "name"}]}
    POST /_sim/anthropic/cost     {"key", "daily_cents": "1234.50"}
    POST /_sim/clock              {"advance_seconds": 86400}
"""

from __future__ import annotations

from typing import Any

from reconciler.simulator import controls
from reconciler.simulator.state import SimState
from reconciler.simulator.wire import Answer, SimRequest

PREFIX = "_sim"


def _key(request: SimRequest) -> str | None:
    body = request.json()
    key = body.get("key") if isinstance(body, dict) else None
    return key if isinstance(key, str) and key else None


def answer(request: SimRequest, state: SimState) -> Answer:
    """Route one `/_sim/...` request (`request.path` is the part after `/_sim`)."""
    match request.method, request.path:
        case "GET", "/stats":
            return Answer.json(200, state.stats())
        case "POST", "/revoke" | "/restore":
            key = _key(request)
            if key is None:
                return Answer.json(400, {"error": 'expected a JSON body {"key": "..."}'})
            if request.path == "/revoke":
                state.revoke(key)
            else:
                state.restore(key)
            return Answer.json(200, {"ok": True})
        case "POST", "/reset":
            state.reset()
            return Answer.json(200, {"ok": True})
        case "POST", _ if request.path.startswith(("/objects", "/quo/", "/anthropic/", "/clock")):
            body = request.json()
            if not isinstance(body, dict):
                return Answer.json(400, {"error": "expected a JSON object body"})
            try:
                return Answer.json(200, _control(request.path, body, state))
            except (controls.ControlError, KeyError, TypeError, ValueError) as e:
                return Answer.json(400, {"error": str(e) or type(e).__name__})
    return Answer.json(404, {"error": "unknown simulator endpoint"})


def _control(path: str, body: dict[str, Any], state: SimState) -> Any:
    if path == "/clock":
        state.advance(float(body["advance_seconds"]))
        return {"ok": True}
    key = body["key"]
    if path == "/quo/phone-numbers":
        numbers = [(n["number"], n.get("name") or "") for n in body["numbers"]]
        controls.set_phone_numbers(state, key, numbers)
        return {"ok": True}
    if path == "/anthropic/cost":
        controls.set_daily_cost(state, key, str(body["daily_cents"]))
        return {"ok": True}
    provider, kind = body["provider"], body["kind"]
    match path:
        case "/objects":
            return {"data": controls.objects(state, provider, kind, key)}
        case "/objects/seed":
            return controls.seed_object(state, provider, kind, key, body.get("body") or {})
        case "/objects/change":
            fields = body.get("fields") or {}
            return controls.change_object(state, provider, kind, key, str(body["id"]), fields)
        case "/objects/delete":
            controls.delete_object(state, provider, kind, key, str(body["id"]))
            return {"ok": True}
    raise controls.ControlError(f"unknown simulator endpoint /_sim{path}")
