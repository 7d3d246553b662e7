"""The official Python SDKs accept the simulator's answers and raise their own errors for its
refusals: proof that the simulator speaks each provider's real dialect (issue 5, part 2).

Retries are switched off in every SDK so refusals surface at once. The SDKs are test-only
dependencies (stripe, anthropic, postmark-python, googlemaps).
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import googlemaps
import postmark.exceptions
import postmark.sync
import pytest
import stripe

from reconciler.simulator import Simulator


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator() as running:
        yield running


# -- Stripe ------------------------------------------------------------------------------------


def stripe_client(sim: Simulator, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        key, base_addresses={"api": sim.base_url("stripe")}, max_network_retries=0
    )


def test_stripe_sdk_reads_the_account(sim: Simulator) -> None:
    account = stripe_client(sim, "sk_test_sdk").v1.accounts.retrieve_current()
    assert isinstance(account, stripe.Account)
    assert account.id.startswith("acct_")
    assert account.charges_enabled is True
    assert account.last_response is not None
    assert account.last_response.request_id.startswith("req_")


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("sk_test_invalid", stripe.AuthenticationError),
        ("sk_test_expired", stripe.AuthenticationError),
        ("rk_test_forbidden", stripe.PermissionError),
        ("sk_test_ratelimited", stripe.RateLimitError),
        ("sk_test_outage", stripe.APIError),
    ],
)
def test_stripe_sdk_raises_its_own_errors(sim: Simulator, key: str, error: type) -> None:
    with pytest.raises(error) as raised:
        stripe_client(sim, key).v1.accounts.retrieve_current()
    assert key not in str(raised.value)


def test_stripe_sdk_sees_the_expired_key_code(sim: Simulator) -> None:
    with pytest.raises(stripe.AuthenticationError) as raised:
        stripe_client(sim, "sk_test_expired").v1.accounts.retrieve_current()
    assert raised.value.error is not None
    assert raised.value.error.code == "api_key_expired"


def test_stripe_sdk_manages_webhook_endpoints(sim: Simulator) -> None:
    client = stripe_client(sim, "sk_test_sdk_webhooks")
    created = client.v1.webhook_endpoints.create(
        {"url": "https://example.com/hook", "enabled_events": ["charge.succeeded", "invoice.paid"]}
    )
    assert created.secret is not None
    assert created.secret.startswith("whsec_")
    assert list(created.enabled_events) == ["charge.succeeded", "invoice.paid"]
    listed = client.v1.webhook_endpoints.list()
    assert [e.id for e in listed.data] == [created.id]
    deleted = client.v1.webhook_endpoints.delete(created.id)
    assert deleted.deleted is True


# -- Anthropic ---------------------------------------------------------------------------------


def anthropic_client(sim: Simulator, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=sim.base_url("anthropic"), max_retries=0)


def test_anthropic_sdk_lists_models(sim: Simulator) -> None:
    with anthropic_client(sim, "sk-ant-sdk") as client:
        page = client.models.list(limit=1)
        assert len(page.data) == 1
        assert page.data[0].type == "model"
        assert page.has_more is True
        assert page.data[0].created_at.year >= 2024
        ids = [model.id for model in client.models.list(limit=3)]  # follows the pages
        assert "claude-sonnet-4-5-20250929" in ids
        assert client.models.retrieve("claude-opus-4-1").id == "claude-opus-4-1-20250805"


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("sk-ant-invalid", anthropic.AuthenticationError),
        ("sk-ant-forbidden", anthropic.PermissionDeniedError),
        ("sk-ant-ratelimited", anthropic.RateLimitError),
        ("sk-ant-overloaded", anthropic.OverloadedError),
        ("sk-ant-outage", anthropic.InternalServerError),
    ],
)
def test_anthropic_sdk_raises_its_own_errors(sim: Simulator, key: str, error: type) -> None:
    with anthropic_client(sim, key) as client, pytest.raises(error) as raised:
        client.models.list(limit=1)
    assert raised.value.request_id.startswith("req_")


# -- Postmark (official SDK: postmark-python) --------------------------------------------------


def test_postmark_sdk_reads_the_server(sim: Simulator) -> None:
    with postmark.sync.ServerClient(
        "pm-sdk-token", retries=0, base_url=sim.base_url("postmark")
    ) as client:
        server = client.server.get()
    assert server.name == "Simulated Server"
    assert server.delivery_type.value == "Live"


@pytest.mark.parametrize(
    ("token", "error"),
    [
        ("pm-invalid", postmark.exceptions.InvalidAPIKeyException),
        ("pm-forbidden", postmark.exceptions.InvalidAPIKeyException),
        ("pm-ratelimited", postmark.exceptions.RateLimitException),
        ("pm-outage", postmark.exceptions.ServerException),
    ],
)
def test_postmark_sdk_raises_its_own_errors(sim: Simulator, token: str, error: type) -> None:
    with (
        postmark.sync.ServerClient(token, retries=0, base_url=sim.base_url("postmark")) as client,
        pytest.raises(error),
    ):
        client.server.get()


def test_postmark_sdk_sees_a_network_block_as_no_token_error(sim: Simulator) -> None:
    with (
        postmark.sync.ServerClient(
            "pm-netblock", retries=0, base_url=sim.base_url("postmark")
        ) as client,
        pytest.raises(postmark.exceptions.PostmarkAPIException) as raised,
    ):
        client.server.get()
    assert not isinstance(raised.value, postmark.exceptions.InvalidAPIKeyException)
    assert raised.value.http_status == 403
    assert raised.value.error_code == 0


# -- Google Maps -------------------------------------------------------------------------------


def maps_client(sim: Simulator, key: str) -> googlemaps.Client:
    return googlemaps.Client(
        key=key,
        base_url=sim.base_url("google_maps"),
        retry_over_query_limit=False,
        retry_timeout=1,
    )


def test_googlemaps_sdk_geocodes(sim: Simulator) -> None:
    client = maps_client(sim, "AIzaSdkKey")
    try:
        results = client.geocode("1600 Amphitheatre Parkway, Mountain View, CA")
    finally:
        client.session.close()
    assert results[0]["geometry"]["location"]["lat"] == pytest.approx(37.42, abs=0.01)


@pytest.mark.parametrize(
    ("key", "status"),
    [
        ("AIzaInvalid", "REQUEST_DENIED"),
        ("AIza-dailylimit", "OVER_DAILY_LIMIT"),
        ("AIza-ratelimited", "OVER_QUERY_LIMIT"),
    ],
)
def test_googlemaps_sdk_raises_api_error(sim: Simulator, key: str, status: str) -> None:
    client = maps_client(sim, key)
    try:
        with pytest.raises(googlemaps.exceptions.ApiError) as raised:
            client.geocode("somewhere")
    finally:
        client.session.close()
    assert raised.value.status == status


# -- Provider-side resources (issue 13) ----------------------------------------------------------


def test_stripe_sdk_pages_updates_and_misses_webhook_endpoints(sim: Simulator) -> None:
    client = stripe_client(sim, "sk_live_sdk_pages")
    made = [
        client.v1.webhook_endpoints.create(
            {
                "url": f"https://example.com/{i}",
                "enabled_events": ["invoice.paid"],
                "metadata": {"managed_by": "reconciler"},
            },
            {"idempotency_key": f"sdk-{i}"},
        )
        for i in range(12)
    ]
    replayed = client.v1.webhook_endpoints.create(
        {
            "url": "https://example.com/0",
            "enabled_events": ["invoice.paid"],
            "metadata": {"managed_by": "reconciler"},
        },
        {"idempotency_key": "sdk-0"},
    )
    assert replayed.id == made[0].id
    assert replayed.secret == made[0].secret
    seen = [e.id for e in client.v1.webhook_endpoints.list().auto_paging_iter()]
    assert sorted(seen) == sorted(e.id for e in made)
    updated = client.v1.webhook_endpoints.update(
        made[0].id,
        {"enabled_events": ["charge.failed"], "description": "d", "metadata": {"managed_by": ""}},
    )
    assert list(updated.enabled_events) == ["charge.failed"]
    assert updated.description == "d"
    assert updated.metadata is not None
    assert updated.metadata.to_dict() == {}
    client.v1.webhook_endpoints.delete(made[0].id)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.webhook_endpoints.retrieve(made[0].id)
    assert missing.value.code == "resource_missing"
    with pytest.raises(stripe.IdempotencyError):
        client.v1.webhook_endpoints.create(
            {"url": "https://example.com/other", "enabled_events": ["invoice.paid"]},
            {"idempotency_key": "sdk-1"},
        )


def test_postmark_sdk_manages_webhooks(sim: Simulator) -> None:
    with postmark.sync.ServerClient(
        "pm-sdk-hooks", retries=0, base_url=sim.base_url("postmark")
    ) as client:
        made = client.webhooks.create(
            url="https://example.com/pm",
            message_stream="outbound",
            triggers={"Delivery": {"Enabled": True}, "Open": {"Enabled": True}},
        )
        assert made.triggers.delivery.enabled is True
        assert made.triggers.open.post_first_open_only is False
        assert [w.id for w in client.webhooks.list(message_stream="outbound")] == [made.id]
        assert [w.id for w in client.webhooks.list()] == [made.id]
        edited = client.webhooks.edit(made.id, triggers={"Bounce": {"Enabled": True}})
        assert edited.triggers.bounce.enabled is True
        assert client.webhooks.get(made.id).url == "https://example.com/pm"
        assert client.webhooks.delete(made.id).error_code == 0


def test_postmark_sdk_manages_sender_signatures_with_the_account_token(sim: Simulator) -> None:
    with postmark.sync.AccountClient(
        "pm-sdk-account", retries=0, base_url=sim.base_url("postmark")
    ) as client:
        made = client.signature.create(sender="ops@acme.example", name="Acme Ops")
        assert made.confirmed is False
        page = client.signature.list(count=500, offset=0)
        assert [s.email_address for s in page.items] == ["ops@acme.example"]
        assert client.signature.get(made.id).domain == "acme.example"
        with pytest.raises(postmark.exceptions.PostmarkAPIException) as duplicate:
            client.signature.create(sender="ops@acme.example", name="Again")
        assert duplicate.value.error_code == 504
