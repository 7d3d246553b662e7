"""Stripe webhook endpoints (``/v1/webhook_endpoints``, form-encoded, ``Bearer`` key).

Ours are marked in metadata: ``managed_by=reconciler`` and ``reconciler_address=<resource>``.
An update sends our marker again and unsets (empty value) any ``reconciler_*`` key we no longer
write. Lists are read 100 at a time following ``starting_after``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.remote import MANAGED_BY, MANAGED_BY_KEY, MARKER_KEY, RemoteObject
from reconciler.core.secret import Secret
from reconciler.providers.errors import ProviderError
from reconciler.providers.interface import Context, Created, unknown_kind
from reconciler.providers.transport import ProviderApi

KIND = "webhook_endpoints"
PATH = "/v1/webhook_endpoints"
PAGE = 100
OUR_PREFIX = "reconciler_"


def describe(body: Any) -> tuple[str | None, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, ""
    return error.get("code") or error.get("type"), str(error.get("message") or "")


def marker_metadata(address: str) -> dict[str, str]:
    return {MANAGED_BY_KEY: MANAGED_BY, MARKER_KEY: address}


def to_record(endpoint: Mapping[str, Any]) -> RemoteObject:
    metadata = dict(endpoint.get("metadata") or {})
    ours = metadata.get(MANAGED_BY_KEY) == MANAGED_BY
    return RemoteObject(
        provider="stripe",
        kind=KIND,
        remote_id=str(endpoint["id"]),
        identity=str(endpoint.get("url") or ""),
        fields={
            "url": endpoint.get("url"),
            "events": list(endpoint.get("enabled_events") or []),
            "description": endpoint.get("description"),
        },
        marker=metadata.get(MARKER_KEY) if ours else None,
        details={
            "status": endpoint.get("status"),
            "livemode": endpoint.get("livemode"),
            "metadata": metadata,
        },
    )


def form(fields: Mapping[str, Any], metadata: Mapping[str, str]) -> list[tuple[str, str]]:
    """The form body: ``enabled_events[0]=…`` as the SDKs send it, ``metadata[KEY]=VALUE``."""
    pairs: list[tuple[str, str]] = []
    if fields.get("url") is not None:
        pairs.append(("url", str(fields["url"])))
    if "events" in fields:
        pairs += [(f"enabled_events[{i}]", str(e)) for i, e in enumerate(fields["events"] or [])]
    if "description" in fields:
        pairs.append(("description", str(fields.get("description") or "")))
    pairs += [(f"metadata[{k}]", v) for k, v in sorted(metadata.items())]
    return pairs


class StripeReads:
    provider = "stripe"
    marks_ours = True  # carries a marker naming our resource (adopting writes it)

    def __init__(self, ctx: Context) -> None:
        self.api: ProviderApi = ctx.api(
            "api_key", lambda key: {"Authorization": f"Bearer {key}"}, describe
        )

    async def list(self, kind: str, scope: tuple[str, ...] = ()) -> tuple[RemoteObject, ...]:
        if kind != KIND:
            raise unknown_kind(self.provider, kind)
        found: list[RemoteObject] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": PAGE}
            if after is not None:
                params["starting_after"] = after
            page = (await self.api.get(PATH, "list webhook endpoints", **params)).body or {}
            data = page.get("data") or []
            found += [to_record(e) for e in data]
            if not page.get("has_more") or not data:
                return tuple(found)
            after = str(data[-1]["id"])


class StripeWrites(StripeReads):
    async def create(
        self,
        kind: str,
        fields: Mapping[str, Any],
        *,
        address: str,
        idempotency_key: str | None = None,
    ) -> Created:
        if kind != KIND:
            raise unknown_kind(self.provider, kind)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        reply = await self.api.call(
            "POST",
            PATH,
            "create a webhook endpoint",
            data=form(fields, marker_metadata(address)),
            headers=headers,
        )
        body = reply.body or {}
        secret = body.get("secret")
        return Created(
            to_record(body), Secret(secret, f"stripe {body.get('id')}") if secret else None
        )

    async def update(
        self, current: RemoteObject, fields: Mapping[str, Any], *, address: str
    ) -> RemoteObject:
        metadata = marker_metadata(address)
        held = current.details.get("metadata") or {}
        metadata |= {k: "" for k in held if k.startswith(OUR_PREFIX) and k not in metadata}
        wanted = {k: fields.get(k) for k in ("url", "events", "description")}
        reply = await self.api.call(
            "POST",
            f"{PATH}/{current.remote_id}",
            "update a webhook endpoint",
            data=form(wanted, metadata),
        )
        return to_record(reply.body or {})

    async def delete(self, current: RemoteObject) -> None:
        try:
            await self.api.call(
                "DELETE", f"{PATH}/{current.remote_id}", "delete a webhook endpoint"
            )
        except ProviderError as e:
            if not e.not_found:
                raise
