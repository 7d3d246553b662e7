"""Changing the providers' objects behind the tool's back, as a person in a dashboard would.

Used by the `/_sim/objects...` endpoints and by the `Simulator` methods. Objects are addressed
by provider, kind and a key of the account that holds them (any key of it: see `accounts`):

    stripe webhook_endpoints    (Stripe secret key)
    postmark webhooks           (server token)
    postmark senders            (account token)
    quo webhooks                (API key)

Seeding ("made in the dashboard") goes through the provider's own create logic, with the body
the API would take (Stripe: form fields such as ``{"url": ..., "enabled_events[]": [...]}``;
the others: their JSON body), so a seeded object looks exactly like one made through the API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from reconciler.simulator import accounts, postmark_resources, quo_webhooks, stripe_webhooks
from reconciler.simulator.dialect import Call, Handler
from reconciler.simulator.state import SimState
from reconciler.simulator.wire import SimRequest

Namespace = Callable[[str], str]

KINDS: dict[tuple[str, str], tuple[Namespace, str, Handler]] = {
    # (provider, kind) -> (namespace of a key, create path, create handler)
    ("stripe", "webhook_endpoints"): (
        stripe_webhooks.namespace,
        "/v1/webhook_endpoints",
        stripe_webhooks.create_webhook,
    ),
    ("postmark", "webhooks"): (
        postmark_resources.webhooks_namespace,
        "/webhooks",
        postmark_resources.create_webhook,
    ),
    ("postmark", "senders"): (
        postmark_resources.senders_namespace,
        "/senders",
        postmark_resources.create_sender,
    ),
    ("quo", "webhooks"): (
        quo_webhooks.namespace,
        "/v1/webhooks/{type}",
        quo_webhooks.create_webhook,
    ),
}


class ControlError(ValueError):
    """A control request that names no known kind or object."""


def _kind(provider: str, kind: str) -> tuple[Namespace, str, Handler]:
    found = KINDS.get((provider, kind))
    if found is None:
        known = ", ".join(f"{p} {k}" for p, k in KINDS)
        raise ControlError(f"no simulated objects {provider} {kind}; known: {known}")
    return found


def objects(state: SimState, provider: str, kind: str, key: str) -> list[dict[str, Any]]:
    """Every object of the kind held for the key, as stored (signing secrets included)."""
    namespace, _, _ = _kind(provider, kind)
    return state.records(namespace(key))


def delete_object(state: SimState, provider: str, kind: str, key: str, object_id: str) -> None:
    namespace, _, _ = _kind(provider, kind)
    if not state.delete_record(namespace(key), str(object_id)):
        raise ControlError(f"no {provider} {kind} object {object_id}")


def change_object(
    state: SimState, provider: str, kind: str, key: str, object_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    """Overwrite fields of a stored object (e.g. ``{"enabled_events": [...]}`` or
    ``{"Confirmed": true}``, the click on Postmark's confirmation link)."""
    namespace, _, _ = _kind(provider, kind)
    found = state.record(namespace(key), str(object_id))
    if found is None:
        raise ControlError(f"no {provider} {kind} object {object_id}")
    found.update(fields)
    state.put_record(namespace(key), str(object_id), found)
    return found


def seed_object(
    state: SimState, provider: str, kind: str, key: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Create an object as the provider's dashboard would; return it as the create answers."""
    _, path, handler = _kind(provider, kind)
    body = dict(body)
    headers: dict[str, str] = {}
    if provider == "stripe":
        raw = urlencode(
            [(k, v) for k, vs in body.items() for v in (vs if isinstance(vs, list) else [vs])]
        ).encode()
    else:
        raw = json.dumps(body).encode()
    if provider == "quo":
        path = path.format(type=body.pop("type", "messages"))
        raw = json.dumps(body).encode()
    if kind == "senders":
        headers["x-postmark-account-token"] = key
    request = SimRequest("POST", path, {}, headers, raw)
    match = re.fullmatch(r"/v1/webhooks/(.+)", path) or re.fullmatch(r"(.*)", path)
    assert match is not None
    answer = handler(request, Call(key, match, state))
    if answer.status >= 300:
        raise ControlError(f"the provider refused the object: {json.dumps(answer.body)}")
    created: dict[str, Any] = (
        answer.body.get("data", answer.body) if provider == "quo" else answer.body
    )
    return created


def set_phone_numbers(state: SimState, key: str, numbers: list[tuple[str, str]]) -> None:
    """The numbers the Quo workspace of ``key`` has (every key of the workspace sees them):
    (E.164 number, name) pairs."""
    state.settings[("quo-numbers", accounts.account(key))] = tuple(numbers)


def set_daily_cost(state: SimState, key: str, cents: str) -> None:
    """What each day of the Anthropic cost report of admin key ``key``'s organization amounts
    to, in cents."""
    state.settings[("anthropic-daily-cents", accounts.account(key))] = str(cents)
