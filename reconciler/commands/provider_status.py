"""What ``status`` shows from the providers themselves (SPEC section 8), GET only:

- Postmark sender signatures, with the optional ``account_token``: confirmed, or pending
  confirmation (Postmark emails a link a person must click); without it, "not verified at
  Postmark";
- Anthropic's month-to-date cost, with the optional ``admin_key``: ``month_to_date_usd`` and
  ``budget_usd`` of ``usage_monitoring``, and whether it crossed ``alert_at_percent``.

A provider that cannot be read is shown as such, never raised: status stays a view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reconciler.core.catalog import Catalog
from reconciler.core.remote import is_signing_secret_field
from reconciler.core.secret import Secret
from reconciler.core.state import Observed, ObservedInstance
from reconciler.core.usage import budget_status
from reconciler.crypto import KeyRing
from reconciler.db.credentials import decrypt, managed_credentials

Key = tuple[str, str]


def provider_facts(
    catalog: Catalog,
    instances: list[ObservedInstance],
    engine: Engine,
    ring: Callable[[], KeyRing],
    environ: Mapping[str, str],
) -> dict[Key, dict[str, Any]]:
    """(organization, provider) -> what the provider says: ``senders`` (email -> confirmed)
    or ``sender_check`` (why not), and ``usage``."""
    wanted: list[tuple[ObservedInstance, dict[str, Secret]]] = []
    with Session(engine) as s:
        for inst in instances:
            managed = inst.managed_connection
            if managed is None or inst.provider not in ("postmark", "anthropic"):
                continue
            needs = "account_token" if inst.provider == "postmark" else "admin_key"
            if needs not in managed.credentials:
                continue
            rows = [
                c
                for c in managed_credentials(s, inst.organization, inst.provider)
                if not is_signing_secret_field(c.field)
            ]
            wanted.append((inst, decrypt(ring(), rows)))
    if not wanted:
        return {}
    return asyncio.run(_read(catalog, wanted, environ))


async def _read(
    catalog: Catalog,
    wanted: list[tuple[ObservedInstance, dict[str, Secret]]],
    environ: Mapping[str, str],
) -> dict[Key, dict[str, Any]]:
    from reconciler.providers import RateLimits, open_reads, open_usage, provider_client
    from reconciler.providers.errors import ProviderError

    limits = RateLimits()
    out: dict[Key, dict[str, Any]] = {}
    async with provider_client() as client:
        for inst, creds in wanted:
            provider = catalog.providers[inst.provider]
            key = (inst.organization, inst.provider)
            try:
                if inst.provider == "postmark":
                    reads = open_reads(
                        provider, creds, client=client, limits=limits, environ=environ
                    )
                    senders = await reads.list("sender_emails")
                    out[key] = {
                        "senders": {
                            o.identity.casefold(): bool(o.details.get("confirmed")) for o in senders
                        }
                    }
                else:
                    usage = open_usage(
                        provider, creds, client=client, limits=limits, environ=environ
                    )
                    mtd = await usage.month_to_date(datetime.now(UTC))
                    out[key] = {"usage": _usage(inst, mtd.usd)}
            except ProviderError as e:
                out[key] = {"error": str(e)}
    return out


def _usage(inst: ObservedInstance, usd: Any) -> dict[str, Any]:
    spec = next((r.spec for r in inst.resources if r.kind == "usage_monitoring"), None)
    if not spec or spec.get("monthly_budget_usd") is None:
        return {"month_to_date_usd": float(usd), "budget_usd": None, "alert": False}
    b = budget_status(usd, spec["monthly_budget_usd"], int(spec.get("alert_at_percent") or 80))
    return {
        "month_to_date_usd": float(b.month_to_date_usd),
        "budget_usd": float(b.budget_usd),
        "percent_used": float(b.percent_used),
        "alert": b.alert,
        "message": b.message,
    }


def budget_usage(
    catalog: Catalog,
    observed: Observed,
    engine: Engine | None,
    ring: Callable[[], KeyRing],
    environ: Mapping[str, str],
    admits: Callable[[str], bool],
) -> dict[str, dict[str, Any]]:
    """ORG/anthropic -> its month-to-date cost against the budget (``health`` reports the
    ones over ``alert_at_percent``); only connections holding an ``admin_key``."""
    if engine is None or not observed.exists:
        return {}
    instances = [
        i
        for (org, provider), i in sorted(observed.instances.items())
        if provider == "anthropic" and admits(org)
    ]
    facts = provider_facts(catalog, instances, engine, ring, environ)
    return {f"{org}/{p}": got["usage"] for (org, p), got in facts.items() if "usage" in got}
