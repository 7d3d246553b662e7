"""Stripe webhook endpoints at the simulator: pagination, metadata, idempotent replay, the
once-only secret, per-mode sets, the test-mode rate limit and the `/_sim` controls."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from reconciler.simulator import Simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as running:
        yield running


def client(sim: Simulator, key: str) -> httpx.Client:
    return httpx.Client(base_url=sim.base_url("stripe"), headers={"Authorization": f"Bearer {key}"})


def create(http: httpx.Client, url: str, **extra: str) -> httpx.Response:
    return http.post(
        "/v1/webhook_endpoints", data={"url": url, "enabled_events[0]": "invoice.paid", **extra}
    )


def test_lists_page_by_ten_newest_first_and_follow_starting_after(sim: Simulator) -> None:
    with client(sim, "sk_live_pages") as http:  # live: 100/s, so no 429 here
        made = [create(http, f"https://example.com/{i}").json()["id"] for i in range(23)]
        first = http.get("/v1/webhook_endpoints").json()
        assert len(first["data"]) == 10
        assert first["has_more"] is True
        seen = [e["id"] for e in first["data"]]
        page = first
        while page["has_more"]:
            page = http.get(
                "/v1/webhook_endpoints", params={"limit": 10, "starting_after": seen[-1]}
            ).json()
            seen += [e["id"] for e in page["data"]]
        assert seen == list(reversed(made))
        assert http.get("/v1/webhook_endpoints", params={"limit": 101}).status_code == 400
        unknown = http.get("/v1/webhook_endpoints", params={"starting_after": "we_nope"})
        assert unknown.json()["error"]["code"] == "resource_missing"


def test_the_secret_is_shown_only_by_the_create(sim: Simulator) -> None:
    with client(sim, "sk_test_secret") as http:
        created = create(http, "https://example.com/s").json()
        assert created["secret"].startswith("whsec_")
        endpoint_id = created["id"]
        assert "secret" not in http.get(f"/v1/webhook_endpoints/{endpoint_id}").json()
        assert "secret" not in http.get("/v1/webhook_endpoints").json()["data"][0]
        updated = http.post(f"/v1/webhook_endpoints/{endpoint_id}", data={"description": "x"})
        assert "secret" not in updated.json()


def test_metadata_is_set_merged_and_unset_by_an_empty_value(sim: Simulator) -> None:
    with client(sim, "sk_test_meta") as http:
        created = create(
            http,
            "https://example.com/m",
            **{"metadata[managed_by]": "reconciler", "metadata[old]": "1"},
        ).json()
        assert created["metadata"] == {"managed_by": "reconciler", "old": "1"}
        updated = http.post(
            f"/v1/webhook_endpoints/{created['id']}",
            data={"metadata[old]": "", "metadata[new]": "2", "description": ""},
        ).json()
        assert updated["metadata"] == {"managed_by": "reconciler", "new": "2"}
        assert updated["description"] is None


def test_idempotent_replay_returns_the_same_endpoint_and_secret(sim: Simulator) -> None:
    with client(sim, "sk_test_idem") as http:
        headers = {"Idempotency-Key": "org-acme-hook-1"}
        data = {"url": "https://example.com/i", "enabled_events[0]": "invoice.paid"}
        first = http.post("/v1/webhook_endpoints", data=data, headers=headers)
        again = http.post("/v1/webhook_endpoints", data=data, headers=headers)
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert len(http.get("/v1/webhook_endpoints").json()["data"]) == 1

        other = http.post(
            "/v1/webhook_endpoints", data={**data, "url": "https://example.com/j"}, headers=headers
        )
        assert other.status_code == 400
        assert other.json()["error"]["type"] == "idempotency_error"

        sim.advance_clock(24 * 3600 + 1)  # saved answers live 24 hours
        later = http.post("/v1/webhook_endpoints", data=data, headers=headers)
        assert later.json()["id"] != first.json()["id"]


def test_test_and_live_keys_see_separate_sets(sim: Simulator) -> None:
    with client(sim, "sk_test_mode") as test, client(sim, "sk_live_mode") as live:
        made = create(test, "https://example.com/t").json()
        assert made["livemode"] is False
        assert live.get("/v1/webhook_endpoints").json()["data"] == []
        assert live.get(f"/v1/webhook_endpoints/{made['id']}").status_code == 404
        assert create(live, "https://example.com/t").json()["livemode"] is True


def test_unknown_ids_answer_resource_missing(sim: Simulator) -> None:
    with client(sim, "sk_test_missing") as http:
        for response in (
            http.get("/v1/webhook_endpoints/we_gone"),
            http.post("/v1/webhook_endpoints/we_gone", data={"description": "x"}),
            http.delete("/v1/webhook_endpoints/we_gone"),
        ):
            assert response.status_code == 404
            assert response.json()["error"] == {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "param": "id",
                "message": "No such webhook endpoint: 'we_gone'",
            }


def test_test_mode_allows_25_requests_a_second_per_key(sim: Simulator) -> None:
    with client(sim, "sk_test_burst") as http, client(sim, "sk_test_other") as other:
        statuses = [http.get("/v1/webhook_endpoints").status_code for _ in range(30)]
        assert statuses.count(200) == 25
        limited = http.get("/v1/webhook_endpoints")
        assert limited.status_code == 429
        assert limited.headers["Stripe-Should-Retry"] == "true"
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"]["code"] == "rate_limit"
        assert other.get("/v1/webhook_endpoints").status_code == 200  # per key


def test_controls_delete_change_and_seed_behind_the_tools_back(sim: Simulator) -> None:
    key = "sk_test_controls"
    with client(sim, key) as http:
        made = create(http, "https://example.com/c").json()
        http_sim = httpx.Client(base_url=sim.url)
        changed = http_sim.post(
            "/_sim/objects/change",
            json={
                "provider": "stripe",
                "kind": "webhook_endpoints",
                "key": key,
                "id": made["id"],
                "fields": {"enabled_events": ["charge.failed"]},
            },
        )
        assert changed.status_code == 200
        got = http.get(f"/v1/webhook_endpoints/{made['id']}").json()
        assert got["enabled_events"] == ["charge.failed"]

        seeded = sim.seed_object(
            "stripe",
            "webhook_endpoints",
            key,
            {"url": "https://example.com/dash", "enabled_events[]": ["*"]},
        )
        assert seeded["metadata"] == {}
        assert {e["url"] for e in http.get("/v1/webhook_endpoints").json()["data"]} == {
            "https://example.com/c",
            "https://example.com/dash",
        }
        deleted = http_sim.post(
            "/_sim/objects/delete",
            json={"provider": "stripe", "kind": "webhook_endpoints", "key": key, "id": made["id"]},
        )
        assert deleted.status_code == 200
        assert http.get(f"/v1/webhook_endpoints/{made['id']}").status_code == 404
        listed = http_sim.post(
            "/_sim/objects", json={"provider": "stripe", "kind": "webhook_endpoints", "key": key}
        ).json()["data"]
        assert [e["secret"][:6] for e in listed] == ["whsec_"]
        refused = http_sim.post(
            "/_sim/objects/delete",
            json={"provider": "stripe", "kind": "nothing", "key": key, "id": "x"},
        )
        assert refused.status_code == 400
        http_sim.close()
