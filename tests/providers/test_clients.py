"""The provider clients against the simulator: what they send, what they read back, how they
pace a key, retry a 429 and fail without showing a secret."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from reconciler.core.catalog import Catalog
from reconciler.core.remote import resource_address
from reconciler.core.secret import Secret
from reconciler.health.policy import RetryPolicy
from reconciler.providers import (
    ProviderError,
    RateLimits,
    open_reads,
    open_usage,
    open_writes,
    provider_client,
)
from reconciler.simulator import Simulator

T = TypeVar("T")
ADDRESS = resource_address("acme/stripe", "webhook_endpoints", "https://acme.example/s")


def run(work: Callable[[Any], Awaitable[T]]) -> T:
    async def main() -> T:
        async with provider_client() as http:
            return await work(http)

    return asyncio.run(main())


def creds(**values: str) -> dict[str, Secret]:
    return {name: Secret(value, name.upper()) for name, value in values.items()}


def test_stripe_create_carries_our_marker_and_returns_the_secret_once(
    sim: Simulator, catalog: Catalog
) -> None:
    key = "sk_test_client_create"
    env = sim.env()
    fields = {"url": "https://acme.example/s", "events": ["invoice.paid", "charge.failed"]}

    async def work(http: Any) -> Any:
        writes = open_writes(
            catalog.providers["stripe"],
            creds(api_key=key),
            client=http,
            limits=RateLimits(),
            environ=env,
        )
        first = await writes.create(
            "webhook_endpoints", fields, address=ADDRESS, idempotency_key="reconciler-k1"
        )
        again = await writes.create(
            "webhook_endpoints", fields, address=ADDRESS, idempotency_key="reconciler-k1"
        )
        listed = await writes.list("webhook_endpoints")
        return first, again, listed

    first, again, listed = run(work)
    assert first.secret is not None and first.secret.reveal().startswith("whsec_")
    assert str(first.secret) == "(sensitive)"
    assert (again.object.remote_id, again.secret) == (first.object.remote_id, first.secret)
    assert [o.remote_id for o in listed] == [first.object.remote_id]
    (held,) = listed
    assert held.marker == ADDRESS
    assert held.fields == {
        "url": "https://acme.example/s",
        "events": ["invoice.paid", "charge.failed"],
        "description": None,
    }
    stored = sim.objects("stripe", "webhook_endpoints", key)[0]
    assert stored["metadata"] == {"managed_by": "reconciler", "reconciler_address": ADDRESS}
    assert stored["enabled_events"] == ["invoice.paid", "charge.failed"]


def test_stripe_lists_every_page_and_tells_ours_from_the_dashboards(
    sim: Simulator, catalog: Catalog
) -> None:
    key = "sk_test_client_pages"
    for i in range(105):
        sim.seed_object(
            "stripe",
            "webhook_endpoints",
            key,
            {"url": f"https://acme.example/{i}", "enabled_events[]": ["*"]},
        )

    async def work(http: Any) -> Any:
        reads = open_reads(
            catalog.providers["stripe"],
            creds(api_key=key),
            client=http,
            limits=RateLimits(),
            environ=sim.env(),
        )
        return await reads.list("webhook_endpoints")

    listed = run(work)
    assert len({o.remote_id for o in listed}) == 105
    assert all(o.marker is None for o in listed)  # made in the dashboard: not ours


def test_stripe_update_in_place_unsets_metadata_we_no_longer_write(
    sim: Simulator, catalog: Catalog
) -> None:
    key = "sk_test_client_update"
    seeded = sim.seed_object(
        "stripe",
        "webhook_endpoints",
        key,
        {
            "url": "https://acme.example/s",
            "enabled_events[]": ["invoice.paid"],
            "description": "old",
            "metadata[reconciler_generation]": "3",
            "metadata[team]": "billing",
        },
    )

    async def work(http: Any) -> Any:
        writes = open_writes(
            catalog.providers["stripe"],
            creds(api_key=key),
            client=http,
            limits=RateLimits(),
            environ=sim.env(),
        )
        (current,) = await writes.list("webhook_endpoints")
        fields = {"url": "https://acme.example/s", "events": ["charge.failed"], "description": None}
        return await writes.update(current, fields, address=ADDRESS)

    updated = run(work)
    assert updated.remote_id == seeded["id"]  # in place
    assert updated.fields["events"] == ["charge.failed"]
    assert updated.fields["description"] is None
    assert updated.marker == ADDRESS
    assert updated.details["metadata"] == {
        "managed_by": "reconciler",
        "reconciler_address": ADDRESS,
        "team": "billing",  # not ours: left alone
    }


def test_a_delete_of_something_already_gone_is_done(sim: Simulator, catalog: Catalog) -> None:
    key = "sk_test_client_delete"

    async def work(http: Any) -> Any:
        writes = open_writes(
            catalog.providers["stripe"],
            creds(api_key=key),
            client=http,
            limits=RateLimits(),
            environ=sim.env(),
        )
        made = await writes.create(
            "webhook_endpoints",
            {"url": "https://acme.example/d", "events": ["*"]},
            address=ADDRESS,
        )
        await writes.delete(made.object)
        await writes.delete(made.object)  # 404 resource_missing: already deleted
        return await writes.list("webhook_endpoints")

    assert run(work) == ()


def test_a_read_client_sends_only_gets(sim: Simulator, catalog: Catalog) -> None:
    async def work(http: Any) -> Any:
        reads: Any = open_reads(
            catalog.providers["stripe"],
            creds(api_key="sk_test_ro"),
            client=http,
            limits=RateLimits(),
            environ=sim.env(),
        )
        with pytest.raises(RuntimeError, match="read-only"):
            await reads.api.call("POST", "/v1/webhook_endpoints", "create")
        assert not hasattr(reads, "create")

    run(work)
    assert sim.request_count() == 0


def test_errors_name_the_call_and_never_the_key(sim: Simulator, catalog: Catalog) -> None:
    key = "sk_test_invalid_canary_7f3a9c"

    async def work(http: Any) -> Any:
        reads = open_reads(
            catalog.providers["stripe"],
            creds(api_key=key),
            client=http,
            limits=RateLimits(),
            environ=sim.env(),
        )
        await reads.list("webhook_endpoints")

    with pytest.raises(ProviderError) as raised:
        run(work)
    text = str(raised.value) + repr(raised.value.args) + raised.value.detail
    assert "canary" not in text and "7f3a9c" not in text
    assert raised.value.status == 401
    assert str(raised.value).startswith("stripe: list webhook endpoints failed (HTTP 401")


def test_a_missing_credential_is_named(sim: Simulator, catalog: Catalog) -> None:
    async def work(http: Any) -> Any:
        reads = open_reads(
            catalog.providers["postmark"],
            creds(api_key="pm-server"),
            client=http,
            limits=RateLimits(),
            environ=sim.env(),
        )
        await reads.list("sender_emails")

    with pytest.raises(ProviderError, match="no 'account_token' credential"):
        run(work)


def test_a_429_is_waited_out_as_the_provider_asks(sim: Simulator, catalog: Catalog) -> None:
    async def work(http: Any) -> Any:
        reads = open_reads(
            catalog.providers["stripe"],
            creds(api_key="sk_test_ratelimit2_client"),
            client=http,
            limits=RateLimits(),
            environ=sim.env(),
        )
        return await reads.list("webhook_endpoints")

    started = time.monotonic()
    assert run(work) == ()
    assert time.monotonic() - started >= 2.0  # Retry-After: 1, twice


def test_a_429_that_never_ends_fails_within_the_bound(sim: Simulator, catalog: Catalog) -> None:
    policy = RetryPolicy(max_total_rate_limit_wait=1.5)

    async def work(http: Any) -> Any:
        reads = open_reads(
            catalog.providers["stripe"],
            creds(api_key="sk_test_ratelimited"),
            client=http,
            limits=RateLimits(),
            policy=policy,
            environ=sim.env(),
        )
        await reads.list("webhook_endpoints")

    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        run(work)
    assert raised.value.rate_limited
    assert time.monotonic() - started < 3


def test_thirty_quo_webhooks_on_one_key_meet_no_429(
    sim: Simulator, catalog: Catalog, access: list[str]
) -> None:
    key = "quo-thirty"
    limits = RateLimits()  # one per run, shared by every client of the key

    async def work(http: Any) -> Any:
        clients = [
            open_writes(
                catalog.providers["quo"],
                creds(api_key=key),
                client=http,
                limits=limits,
                environ=sim.env(),
            )
            for _ in range(3)
        ]
        made = await asyncio.gather(
            *(
                clients[i % 3].create(
                    "webhooks",
                    {
                        "type": "messages",
                        "url": f"https://acme.example/q{i}",
                        "events": ["message.received"],
                        "label": f"hook {i}",
                    },
                    address=f"acme/quo/webhooks/messages:https://acme.example/q{i}",
                )
                for i in range(30)
            )
        )
        listed = await clients[0].list("webhooks")
        return made, listed

    started = time.monotonic()
    made, listed = run(work)
    elapsed = time.monotonic() - started
    assert len(listed) == 30
    assert all(m.secret is not None for m in made)
    assert not [line for line in access if line.endswith(" 429")]
    assert elapsed < 6  # 31 requests at 8/s after a burst of 2
    first = listed[0]
    assert first.identity == f"messages:{first.fields['url']}"
    assert "key" not in first.fields and "key" not in first.details


def test_quo_numbers_and_webhook_lifecycle(sim: Simulator, catalog: Catalog) -> None:
    key = "quo-lifecycle"
    sim.set_phone_numbers(key, [("+15555550100", "Support")])

    async def work(http: Any) -> Any:
        writes = open_writes(
            catalog.providers["quo"],
            creds(api_key=key),
            client=http,
            limits=RateLimits(),
            environ=sim.env(),
        )
        numbers = await writes.list("phone_numbers")
        made = await writes.create(
            "webhooks",
            {
                "type": "call_summaries",
                "url": "https://acme.example/q",
                "events": ["call.summary.completed"],
            },
            address="acme/quo/webhooks/call_summaries:https://acme.example/q",
        )
        with pytest.raises(ProviderError, match="cannot be changed in place"):
            await writes.update(made.object, {}, address="x")
        await writes.delete(made.object)
        return numbers, made, await writes.list("webhooks")

    numbers, made, after = run(work)
    assert [n.identity for n in numbers] == ["+15555550100"]
    assert made.object.identity == "call_summaries:https://acme.example/q"
    assert made.secret is not None
    assert after == ()


def test_postmark_webhooks_and_senders(sim: Simulator, catalog: Catalog) -> None:
    credentials = creds(api_key="pm-server-client", account_token="pm-account-client")

    async def work(http: Any) -> Any:
        writes = open_writes(
            catalog.providers["postmark"],
            credentials,
            client=http,
            limits=RateLimits(),
            environ=sim.env(),
        )
        hook = await writes.create(
            "webhooks",
            {
                "url": "https://acme.example/pm",
                "message_stream": "outbound",
                "triggers": ["open", "bounce"],
            },
            address="acme/postmark/webhooks/outbound:https://acme.example/pm",
        )
        changed = await writes.update(
            hook.object, {"url": "https://acme.example/pm", "triggers": ["click"]}, address=""
        )
        sender = await writes.create(
            "sender_emails", {"email": "billing@acme.example", "name": "Billing"}, address=""
        )
        return hook, changed, sender, await writes.list("sender_emails")

    hook, changed, sender, senders = run(work)
    assert hook.secret is None
    assert hook.object.identity == "outbound:https://acme.example/pm"
    assert hook.object.fields["triggers"] == ["bounce", "open"]
    assert changed.remote_id == hook.object.remote_id
    assert changed.fields["triggers"] == ["click"]  # removed triggers switched off
    assert sender.object.details["confirmed"] is False
    assert [s.identity for s in senders] == ["billing@acme.example"]


def test_anthropic_month_to_date_cost_in_dollars(sim: Simulator, catalog: Catalog) -> None:
    key = "sk-ant-admin01-client"
    sim.set_daily_cost(key, "250.50")
    now = datetime.now(UTC)

    async def work(http: Any) -> Any:
        usage = open_usage(
            catalog.providers["anthropic"],
            creds(api_key="sk-ant-x", admin_key=key),
            client=http,
            limits=RateLimits(),
            environ=sim.env(),
        )
        return await usage.month_to_date(now)

    cost = run(work)
    assert cost.since.day == 1
    assert cost.usd == Decimal("2.505") * now.day


def test_the_base_url_override_is_checked_as_for_health(catalog: Catalog) -> None:
    async def work(http: Any) -> Any:
        open_reads(
            catalog.providers["stripe"],
            creds(api_key="k"),
            client=http,
            limits=RateLimits(),
            environ={"RECONCILER_BASE_URL_STRIPE": "ftp://nope"},
        )

    with pytest.raises(Exception, match="RECONCILER_BASE_URL_STRIPE must be an http"):
        run(work)


def test_thirty_stripe_endpoints_on_one_test_key_meet_no_429(
    sim: Simulator, catalog: Catalog, access: list[str]
) -> None:
    async def work(http: Any) -> Any:
        writes = open_writes(
            catalog.providers["stripe"],
            creds(api_key="sk_test_thirty"),
            client=http,
            limits=RateLimits(),
            environ=sim.env(),
        )
        await asyncio.gather(
            *(
                writes.create(
                    "webhook_endpoints",
                    {"url": f"https://acme.example/{i}", "events": ["invoice.paid"]},
                    address=f"acme/stripe/webhook_endpoints/https://acme.example/{i}",
                )
                for i in range(30)
            )
        )
        return await writes.list("webhook_endpoints")

    assert len(run(work)) == 30
    assert not [line for line in access if line.endswith(" 429")]
