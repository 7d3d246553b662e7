"""Postmark webhooks (``/webhooks``, server token) and sender signatures (``/senders``,
account token only). JSON both ways; integer ids, kept as text in the records.

Postmark has no field to mark an object as ours: ownership comes from the ids our tables
remember. Webhooks are listed per message stream (``MessageStream=``), for the streams the
manifest and our tables name and ``outbound``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.core.remote import RemoteObject
from reconciler.providers.errors import ProviderError
from reconciler.providers.interface import Context, Created, unknown_kind
from reconciler.providers.transport import ProviderApi

TRIGGERS = {  # manifest word -> Postmark's trigger name
    "open": "Open",
    "click": "Click",
    "delivery": "Delivery",
    "bounce": "Bounce",
    "spam_complaint": "SpamComplaint",
    "subscription_change": "SubscriptionChange",
}
SENDER_PAGE = 500


def describe(body: Any) -> tuple[str | None, str]:
    if not isinstance(body, dict) or "ErrorCode" not in body:
        return None, ""
    return str(body.get("ErrorCode")), str(body.get("Message") or "")


def webhook_record(hook: Mapping[str, Any]) -> RemoteObject:
    triggers = hook.get("Triggers") or {}
    enabled = sorted(
        word for word, name in TRIGGERS.items() if (triggers.get(name) or {}).get("Enabled")
    )
    stream = str(hook.get("MessageStream") or "outbound")
    return RemoteObject(
        provider="postmark",
        kind="webhooks",
        remote_id=str(hook["ID"]),
        identity=f"{stream}:{hook.get('Url')}",
        fields={"url": hook.get("Url"), "message_stream": stream, "triggers": enabled},
    )


def sender_record(sender: Mapping[str, Any]) -> RemoteObject:
    return RemoteObject(
        provider="postmark",
        kind="sender_emails",
        remote_id=str(sender["ID"]),
        identity=str(sender.get("EmailAddress") or ""),
        fields={"email": sender.get("EmailAddress"), "name": sender.get("Name")},
        details={"confirmed": bool(sender.get("Confirmed")), "domain": sender.get("Domain")},
    )


def trigger_body(words: Any) -> dict[str, dict[str, bool]]:
    """Every trigger, enabled or not, so an update also switches off what was removed."""
    chosen = set(words or [])
    return {name: {"Enabled": word in chosen} for word, name in TRIGGERS.items()}


class PostmarkReads:
    provider = "postmark"
    marks_ours = False  # no field can carry a marker: ours are the ids our tables hold

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self.server: ProviderApi = ctx.api(
            "api_key", lambda key: {"X-Postmark-Server-Token": key}, describe
        )
        self._account: ProviderApi | None = None

    @property
    def account(self) -> ProviderApi:
        """The account-token side (sender signatures); a ProviderError without the token."""
        if self._account is None:
            self._account = self._ctx.api(
                "account_token", lambda key: {"X-Postmark-Account-Token": key}, describe
            )
        return self._account

    async def list(self, kind: str, scope: tuple[str, ...] = ()) -> tuple[RemoteObject, ...]:
        if kind == "webhooks":
            return await self._webhooks(scope)
        if kind == "sender_emails":
            found: list[RemoteObject] = []
            while True:
                body = (
                    await self.account.get(
                        "/senders", "list sender signatures", count=SENDER_PAGE, offset=len(found)
                    )
                ).body or {}
                page = body.get("SenderSignatures") or []
                found += [sender_record(s) for s in page]
                if not page or len(found) >= int(body.get("TotalCount") or 0):
                    return tuple(found)
        raise unknown_kind(self.provider, kind)

    async def _webhooks(self, streams: tuple[str, ...]) -> tuple[RemoteObject, ...]:
        """``GET /webhooks?MessageStream=S`` for each stream (every stream at once without one);
        an object is listed once however many answers hold it."""
        found: dict[str, RemoteObject] = {}
        for params in [{"MessageStream": s} for s in streams] or [{}]:
            body = (await self.server.get("/webhooks", "list webhooks", **params)).body or {}
            for hook in body.get("Webhooks") or []:
                record = webhook_record(hook)
                found.setdefault(record.remote_id, record)
        return tuple(found.values())


class PostmarkWrites(PostmarkReads):
    async def create(
        self,
        kind: str,
        fields: Mapping[str, Any],
        *,
        address: str,
        idempotency_key: str | None = None,
    ) -> Created:
        if kind == "webhooks":
            body = {
                "Url": fields["url"],
                "MessageStream": fields.get("message_stream") or "outbound",
                "Triggers": trigger_body(fields.get("triggers")),
            }
            reply = await self.server.call("POST", "/webhooks", "create a webhook", body=body)
            return Created(webhook_record(reply.body or {}))
        if kind == "sender_emails":
            email = str(fields["email"])
            body = {"FromEmail": email, "Name": fields.get("name") or email}
            reply = await self.account.call(
                "POST", "/senders", "create a sender signature", body=body
            )
            return Created(sender_record(reply.body or {}))
        raise unknown_kind(self.provider, kind)

    async def update(
        self, current: RemoteObject, fields: Mapping[str, Any], *, address: str
    ) -> RemoteObject:
        if current.kind == "webhooks":
            body = {"Url": fields["url"], "Triggers": trigger_body(fields.get("triggers"))}
            reply = await self.server.call(
                "PUT", f"/webhooks/{current.remote_id}", "update a webhook", body=body
            )
            return webhook_record(reply.body or {})
        if current.kind == "sender_emails":
            body = {"Name": fields.get("name") or current.identity}
            reply = await self.account.call(
                "PUT", f"/senders/{current.remote_id}", "update a sender signature", body=body
            )
            return sender_record(reply.body or {})
        raise unknown_kind(self.provider, current.kind)

    async def delete(self, current: RemoteObject) -> None:
        api, path = (
            (self.server, "/webhooks") if current.kind == "webhooks" else (self.account, "/senders")
        )
        try:
            await api.call("DELETE", f"{path}/{current.remote_id}", f"delete {current.kind}")
        except ProviderError as e:
            if not e.not_found:
                raise
