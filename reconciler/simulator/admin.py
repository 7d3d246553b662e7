"""The simulator's own endpoints under `/_sim`: revoke and restore keys, read and reset stats.

A key sent here is held in memory only and never written back in an answer or a log line.
"""

from __future__ import annotations

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
    return Answer.json(404, {"error": "unknown simulator endpoint"})
