"""The resource APIs beyond the health checks: Stripe webhook endpoints, Anthropic models,
Quo phone numbers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from reconciler.simulator import Simulator
from reconciler.simulator.anthropic_api import MODELS


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator() as running:
        yield running


@pytest.fixture
def stripe(sim: Simulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": "Bearer sk_test_webhooks"}
    with httpx.Client(base_url=sim.base_url("stripe"), headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def anthropic(sim: Simulator) -> Iterator[httpx.Client]:
    headers = {"x-api-key": "sk-ant-models", "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=sim.base_url("anthropic"), headers=headers) as client:
        yield client


def test_webhook_endpoint_lifecycle(stripe: httpx.Client) -> None:
    created = stripe.post(
        "/v1/webhook_endpoints",
        data={
            "url": "https://example.com/hooks",
            "enabled_events[]": ["charge.succeeded", "invoice.paid"],
        },
    )
    assert created.status_code == 200
    endpoint = created.json()
    assert endpoint["object"] == "webhook_endpoint"
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["enabled_events"] == ["charge.succeeded", "invoice.paid"]
    assert endpoint["livemode"] is False

    listed = stripe.get("/v1/webhook_endpoints").json()
    assert listed["object"] == "list"
    assert [e["id"] for e in listed["data"]] == [endpoint["id"]]
    assert "secret" not in listed["data"][0]  # shown only at creation

    updated = stripe.post(
        f"/v1/webhook_endpoints/{endpoint['id']}",
        data={"enabled_events[0]": "payout.paid", "disabled": "true"},
    ).json()
    assert updated["enabled_events"] == ["payout.paid"]
    assert updated["status"] == "disabled"
    assert stripe.get(f"/v1/webhook_endpoints/{endpoint['id']}").json()["url"] == (
        "https://example.com/hooks"
    )

    deleted = stripe.delete(f"/v1/webhook_endpoints/{endpoint['id']}").json()
    assert deleted == {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}
    missing = stripe.get(f"/v1/webhook_endpoints/{endpoint['id']}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"


def test_webhook_endpoints_belong_to_the_keys_account(sim: Simulator, stripe: httpx.Client) -> None:
    stripe.post(
        "/v1/webhook_endpoints",
        data={"url": "https://example.com/a", "enabled_events[]": "charge.succeeded"},
    )
    other = httpx.get(
        sim.base_url("stripe") + "/v1/webhook_endpoints",
        headers={"Authorization": "Bearer sk_test_someone_else"},
    )
    assert other.json()["data"] == []


def test_webhook_create_names_a_missing_parameter(stripe: httpx.Client) -> None:
    response = stripe.post("/v1/webhook_endpoints", data={"url": "https://example.com/x"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "enabled_events"
    assert response.json()["error"]["code"] == "parameter_missing"


def test_webhook_endpoints_refuse_a_bad_key(sim: Simulator) -> None:
    response = httpx.get(
        sim.base_url("stripe") + "/v1/webhook_endpoints",
        headers={"Authorization": "Bearer sk_test_invalid"},
    )
    assert response.status_code == 401


def test_models_listing_pages_forward_and_back(anthropic: httpx.Client) -> None:
    first = anthropic.get("/v1/models", params={"limit": 2}).json()
    assert [m["type"] for m in first["data"]] == ["model", "model"]
    assert first["has_more"] is True
    assert first["first_id"] == first["data"][0]["id"]
    assert first["last_id"] == first["data"][-1]["id"]

    seen = [m["id"] for m in first["data"]]
    page = first
    while page["has_more"]:
        page = anthropic.get("/v1/models", params={"limit": 2, "after_id": page["last_id"]}).json()
        seen += [m["id"] for m in page["data"]]
    assert seen == [m[0] for m in MODELS]

    back = anthropic.get("/v1/models", params={"limit": 2, "before_id": seen[4]}).json()
    assert [m["id"] for m in back["data"]] == seen[2:4]
    assert back["has_more"] is True


def test_models_listing_names_current_models(anthropic: httpx.Client) -> None:
    data = anthropic.get("/v1/models", params={"limit": 100}).json()["data"]
    ids = {m["id"] for m in data}
    assert {"claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805"} <= ids
    assert all(m["display_name"] and m["created_at"] for m in data)


def test_a_model_is_found_by_id_or_alias(anthropic: httpx.Client) -> None:
    by_alias = anthropic.get("/v1/models/claude-haiku-4-5").json()
    assert by_alias["id"] == "claude-haiku-4-5-20251001"
    assert anthropic.get("/v1/models/claude-haiku-4-5-20251001").json() == by_alias
    missing = anthropic.get("/v1/models/gpt-4")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"


def test_models_limit_is_checked(anthropic: httpx.Client) -> None:
    assert anthropic.get("/v1/models", params={"limit": 0}).status_code == 400


def test_phone_numbers_are_stable_per_key(sim: Simulator) -> None:
    def ids(key: str) -> list[str]:
        url = sim.base_url("quo") + "/v1/phone-numbers"
        return [n["id"] for n in httpx.get(url, headers={"Authorization": key}).json()["data"]]

    assert ids("quo-a") == ids("quo-a") != ids("quo-b")
