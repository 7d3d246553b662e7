"""Postmark webhooks and sender signatures, Quo numbers and webhooks, Anthropic's cost report
at the simulator, as each provider answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from reconciler.simulator import Simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as running:
        yield running


def postmark(sim: Simulator, **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=sim.base_url("postmark"), headers={"Accept": "application/json", **headers}
    )


def test_postmark_webhook_lifecycle(sim: Simulator) -> None:
    with postmark(sim, **{"X-Postmark-Server-Token": "pm-server"}) as http:
        made = http.post(
            "/webhooks",
            json={"Url": "https://example.com/pm", "Triggers": {"Bounce": {"Enabled": True}}},
        ).json()
        assert isinstance(made["ID"], int)
        assert made["MessageStream"] == "outbound"
        assert made["Triggers"]["Bounce"] == {"Enabled": True, "IncludeContent": False}
        assert made["Triggers"]["Open"] == {"Enabled": False, "PostFirstOpenOnly": False}
        listed = http.get("/webhooks", params={"MessageStream": "outbound"}).json()
        assert [w["ID"] for w in listed["Webhooks"]] == [made["ID"]]
        assert http.get("/webhooks", params={"MessageStream": "broadcast"}).json() == {
            "Webhooks": []
        }
        unknown = http.get("/webhooks", params={"MessageStream": "nope"})
        assert unknown.status_code == 422
        assert unknown.json()["ErrorCode"] == 1226

        edited = http.put(
            f"/webhooks/{made['ID']}", json={"Triggers": {"Click": {"Enabled": True}}}
        ).json()
        assert edited["Triggers"]["Click"]["Enabled"] is True
        assert edited["Triggers"]["Bounce"]["Enabled"] is True  # only what is sent changes
        assert edited["Url"] == "https://example.com/pm"

        deleted = http.delete(f"/webhooks/{made['ID']}")
        assert deleted.json()["ErrorCode"] == 0
        assert http.get(f"/webhooks/{made['ID']}").status_code == 404
        assert http.post("/webhooks", json={"Url": "nope"}).json()["ErrorCode"] == 606


def test_postmark_senders_need_the_account_token(sim: Simulator) -> None:
    with postmark(sim, **{"X-Postmark-Server-Token": "pm-server"}) as server:
        refused = server.get("/senders", params={"count": 500, "offset": 0})
        assert refused.status_code == 401
        assert refused.json()["ErrorCode"] == 10
    with postmark(sim, **{"X-Postmark-Account-Token": "pm-account"}) as account:
        made = account.post(
            "/senders", json={"FromEmail": "billing@acme.example", "Name": "Acme Billing"}
        ).json()
        assert made["Confirmed"] is False
        assert made["Domain"] == "acme.example"
        again = account.post("/senders", json={"FromEmail": "Billing@acme.example", "Name": "A"})
        assert again.status_code == 422
        assert again.json()["ErrorCode"] == 504
        listed = account.get("/senders", params={"count": 500, "offset": 0}).json()
        assert listed["TotalCount"] == 1
        assert listed["SenderSignatures"][0]["EmailAddress"] == "billing@acme.example"
        sim.change_object("postmark", "senders", "pm-account", str(made["ID"]), {"Confirmed": True})
        assert account.get(f"/senders/{made['ID']}").json()["Confirmed"] is True
    with postmark(sim, **{"X-Postmark-Account-Token": "pm-invalid"}) as bad:
        assert bad.get("/senders", params={"count": 1, "offset": 0}).status_code == 401


def quo(sim: Simulator, key: str) -> httpx.Client:
    return httpx.Client(base_url=sim.base_url("quo"), headers={"Authorization": key})


def test_quo_workspace_numbers_are_configurable(sim: Simulator) -> None:
    sim.set_phone_numbers("quo-numbers", [("+15555550100", "Sales")])
    with quo(sim, "quo-numbers") as http:
        data = http.get("/v1/phone-numbers").json()["data"]
    assert [(n["number"], n["name"]) for n in data] == [("+15555550100", "Sales")]
    assert data[0]["id"].startswith("PN")


def test_quo_webhook_lifecycle_without_update(sim: Simulator) -> None:
    with quo(sim, "quo-hooks") as http:
        made = http.post(
            "/v1/webhooks/call-summaries",
            json={"url": "https://example.com/q", "events": ["call.summary.completed"]},
        )
        assert made.status_code == 201
        hook = made.json()["data"]
        assert hook["id"].startswith("WH")
        assert hook["key"]
        assert hook["resourceIds"] == ["*"]
        assert [w["id"] for w in http.get("/v1/webhooks").json()["data"]] == [hook["id"]]
        assert http.get(f"/v1/webhooks/{hook['id']}").json()["data"]["url"] == hook["url"]
        wrong = http.post(
            "/v1/webhooks/messages",
            json={"url": "https://example.com/q", "events": ["call.completed"]},
        )
        assert wrong.status_code == 400
        assert http.patch(f"/v1/webhooks/{hook['id']}", json={"label": "x"}).status_code == 404
        assert http.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
        missing = http.get(f"/v1/webhooks/{hook['id']}")
        assert missing.status_code == 404
        assert set(missing.json()) == {"message", "code", "status", "docs", "title", "trace"}


def test_quo_allows_ten_requests_a_second_per_key(sim: Simulator) -> None:
    with quo(sim, "quo-burst") as http, quo(sim, "quo-other") as other:
        statuses = [http.get("/v1/webhooks").status_code for _ in range(12)]
        assert statuses.count(200) == 10
        assert statuses[-1] == 429
        assert other.get("/v1/webhooks").status_code == 200
        time.sleep(1.05)
        assert http.get("/v1/webhooks").status_code == 200


def anthropic(sim: Simulator, key: str) -> httpx.Client:
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    return httpx.Client(base_url=sim.base_url("anthropic"), headers=headers)


def test_cost_report_needs_an_admin_key_and_pages(sim: Simulator) -> None:
    start = (datetime.now(UTC) - timedelta(days=20)).strftime("%Y-%m-%dT00:00:00Z")
    params = {"starting_at": start, "bucket_width": "1d"}
    with anthropic(sim, "sk-ant-api03-normal") as normal:
        refused = normal.get("/v1/organizations/cost_report", params=params)
        assert refused.status_code == 401
    sim.set_daily_cost("sk-ant-admin01-costs", "250.25")
    with anthropic(sim, "sk-ant-admin01-costs") as admin:
        pages = [admin.get("/v1/organizations/cost_report", params=params).json()]
        while pages[-1]["has_more"]:
            nxt = {**params, "page": pages[-1]["next_page"]}
            pages.append(admin.get("/v1/organizations/cost_report", params=nxt).json())
    buckets = [b for p in pages for b in p["data"]]
    assert len(pages) > 1
    assert pages[-1]["next_page"] is None
    assert buckets[0]["starting_at"] == start
    assert len(buckets) in (20, 21)
    amounts = {r["amount"] for b in buckets for r in b["results"]}
    assert amounts == {"250.25"}
    total = sum(Decimal(r["amount"]) for b in buckets for r in b["results"])
    assert total == Decimal("250.25") * len(buckets)


def test_sim_controls_over_http(sim: Simulator) -> None:
    with httpx.Client(base_url=sim.url) as control:
        numbers = {"key": "quo-http", "numbers": [{"number": "+15555550123", "name": "Ops"}]}
        assert control.post("/_sim/quo/phone-numbers", json=numbers).status_code == 200
        assert control.post(
            "/_sim/anthropic/cost", json={"key": "sk-ant-admin01-http", "daily_cents": "99"}
        ).json() == {"ok": True}
        seeded = control.post(
            "/_sim/objects/seed",
            json={
                "provider": "quo",
                "kind": "webhooks",
                "key": "quo-http",
                "body": {"type": "calls", "url": "https://x.example/c", "events": ["call.ringing"]},
            },
        ).json()
        assert seeded["id"].startswith("WH")
        hook = control.post(
            "/_sim/objects/seed",
            json={
                "provider": "postmark",
                "kind": "webhooks",
                "key": "pm-http",
                "body": {"Url": "https://x.example/p"},
            },
        ).json()
        assert hook["MessageStream"] == "outbound"
        assert control.post("/_sim/clock", json={"advance_seconds": 60}).status_code == 200
        bad = control.post("/_sim/objects/seed", json={"provider": "quo", "kind": "webhooks"})
        assert bad.status_code == 400
    with quo(sim, "quo-http") as http:
        assert [n["number"] for n in http.get("/v1/phone-numbers").json()["data"]] == [
            "+15555550123"
        ]
        assert [w["id"] for w in http.get("/v1/webhooks").json()["data"]] == [seeded["id"]]
