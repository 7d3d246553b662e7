"""Quo phone numbers (read only) and webhooks (``/v1/webhooks/...``; raw key in
``Authorization``). Webhooks cannot be updated: a change is a delete and a create. The webhook
``key`` (its signing secret) is taken from the create answer only and never put in a record.
10 requests per second per key (the catalog's ``rate_limit``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.remote import RemoteObject
from reconciler.core.secret import Secret
from reconciler.providers.errors import ProviderError
from reconciler.providers.interface import Context, Created, unknown_kind
from reconciler.providers.transport import ProviderApi

PATHS = {  # manifest type -> create path
    "messages": "/v1/webhooks/messages",
    "calls": "/v1/webhooks/calls",
    "call_summaries": "/v1/webhooks/call-summaries",
    "call_transcripts": "/v1/webhooks/call-transcripts",
}


def describe(body: Any) -> tuple[str | None, str]:
    if not isinstance(body, dict):
        return None, ""
    return (str(body["code"]) if body.get("code") else None), str(body.get("message") or "")


def webhook_type(events: list[str], named: Any = None) -> str:
    """The webhook's type: as the answer names it where it does, else from its events (Quo's
    list answer does not name it)."""
    if isinstance(named, str) and named.replace("-", "_") in PATHS:
        return named.replace("-", "_")
    first = events[0] if events else ""
    if first.startswith("message."):
        return "messages"
    if first.startswith("call.summary."):
        return "call_summaries"
    if first.startswith("call.transcript."):
        return "call_transcripts"
    return "calls"


def webhook_record(hook: Mapping[str, Any]) -> RemoteObject:
    events = [str(e) for e in hook.get("events") or []]
    kind = webhook_type(events, hook.get("type"))
    return RemoteObject(
        provider="quo",
        kind="webhooks",
        remote_id=str(hook["id"]),
        identity=f"{kind}:{hook.get('url')}",
        fields={"type": kind, "url": hook.get("url"), "events": events, "label": hook.get("label")},
        details={"status": hook.get("status")},
    )


def number_record(number: Mapping[str, Any]) -> RemoteObject:
    return RemoteObject(
        provider="quo",
        kind="phone_numbers",
        remote_id=str(number.get("id")),
        identity=str(number.get("number") or ""),
        fields={"number": number.get("number")},
        details={"name": number.get("name")},
    )


class QuoReads:
    provider = "quo"
    marks_ours = False  # no field can carry a marker: ours are the ids our tables hold

    def __init__(self, ctx: Context) -> None:
        self.api: ProviderApi = ctx.api("api_key", lambda key: {"Authorization": key}, describe)

    async def list(self, kind: str, scope: tuple[str, ...] = ()) -> tuple[RemoteObject, ...]:
        if kind == "phone_numbers":
            body = (await self.api.get("/v1/phone-numbers", "list phone numbers")).body or {}
            return tuple(number_record(n) for n in body.get("data") or [])
        if kind == "webhooks":
            body = (await self.api.get("/v1/webhooks", "list webhooks")).body or {}
            return tuple(webhook_record(h) for h in body.get("data") or [])
        raise unknown_kind(self.provider, kind)


class QuoWrites(QuoReads):
    async def create(
        self,
        kind: str,
        fields: Mapping[str, Any],
        *,
        address: str,
        idempotency_key: str | None = None,
    ) -> Created:
        if kind != "webhooks":
            raise unknown_kind(self.provider, kind)
        body: dict[str, Any] = {
            "url": fields["url"],
            "events": list(fields.get("events") or []),
            "resourceIds": ["*"],
        }
        if fields.get("label"):
            body["label"] = fields["label"]
        path = PATHS[str(fields["type"])]
        reply = await self.api.call("POST", path, "create a webhook", body=body)
        data = (reply.body or {}).get("data") or {}
        key = data.get("key")
        return Created(webhook_record(data), Secret(key, f"quo {data.get('id')}") if key else None)

    async def update(
        self, current: RemoteObject, fields: Mapping[str, Any], *, address: str
    ) -> RemoteObject:
        raise ProviderError(
            self.provider,
            "update a webhook",
            detail="Quo webhooks cannot be changed in place; plan a replace (delete and create)",
        )

    async def delete(self, current: RemoteObject) -> None:
        if current.kind != "webhooks":
            raise unknown_kind(self.provider, current.kind)
        try:
            await self.api.call("DELETE", f"/v1/webhooks/{current.remote_id}", "delete a webhook")
        except ProviderError as e:
            if not e.not_found:
                raise
