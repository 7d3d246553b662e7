"""Keys of one account see one account's objects: a key that names `acct_<ID>_` belongs to that
account (a rolled Stripe key, a regenerated Postmark token, a second Quo API key of a
workspace), so what the old key made is there for the new one; any other key is an account of
its own."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from reconciler.simulator import Simulator
from reconciler.simulator.accounts import account, named_account

OLD = "sk_test_acct_1Acme_old51HxQ"
NEW = "sk_test_acct_1Acme_rolled9Zk"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as running:
        yield running


def stripe(sim: Simulator, key: str) -> httpx.Client:
    return httpx.Client(base_url=sim.base_url("stripe"), headers={"Authorization": f"Bearer {key}"})


def test_the_account_is_the_one_a_key_names_else_the_keys_own() -> None:
    assert named_account(OLD) == named_account(NEW) == "acct_1Acme"
    assert account("acct_9Ws_quo-key") == "acct_9Ws"
    assert named_account("sk_test_acct_1Acme") is None  # no underscore after the id
    assert named_account("sk_test_CANARY") is None and account("k-1") == "k-1"


def test_a_rolled_stripe_key_sees_the_accounts_endpoints(sim: Simulator) -> None:
    with stripe(sim, OLD) as old:
        made = old.post(
            "/v1/webhook_endpoints",
            data={"url": "https://acme.example/s", "enabled_events[]": "invoice.paid"},
            headers={"Idempotency-Key": "create-1"},
        ).json()
        assert old.get("/v1/account").json()["id"] == "acct_1Acme"
    with stripe(sim, NEW) as new:
        assert new.get("/v1/account").json()["id"] == "acct_1Acme"
        assert [e["id"] for e in new.get("/v1/webhook_endpoints").json()["data"]] == [made["id"]]
        # an idempotency key belongs to the account: the new key gets the saved answer
        again = new.post(
            "/v1/webhook_endpoints",
            data={"url": "https://acme.example/s", "enabled_events[]": "invoice.paid"},
            headers={"Idempotency-Key": "create-1"},
        )
        assert again.headers["idempotent-replayed"] == "true"
        assert (again.json()["id"], again.json()["secret"]) == (made["id"], made["secret"])
        assert new.delete(f"/v1/webhook_endpoints/{made['id']}").json()["deleted"] is True
    assert sim.objects("stripe", "webhook_endpoints", OLD) == []


def test_live_mode_and_other_accounts_are_separate_sets(sim: Simulator) -> None:
    sim.seed_object(
        "stripe",
        "webhook_endpoints",
        OLD,
        {"url": "https://acme.example/t", "enabled_events[]": ["invoice.paid"]},
    )
    for other in ("sk_live_acct_1Acme_live", "sk_test_acct_1Globex_x", "sk_test_no_account"):
        with stripe(sim, other) as http:
            assert http.get("/v1/webhook_endpoints").json()["data"] == [], other
    with stripe(sim, "sk_live_acct_1Acme_live") as live:
        assert live.get("/v1/account").json()["id"] == "acct_1Acme"
    with stripe(sim, "sk_test_no_account") as own:
        assert own.get("/v1/account").json()["id"] != "acct_1Acme"


def test_postmark_tokens_of_one_server_and_one_account(sim: Simulator) -> None:
    def client(**headers: str) -> httpx.Client:
        return httpx.Client(
            base_url=sim.base_url("postmark"), headers={"Accept": "application/json", **headers}
        )

    with client(**{"X-Postmark-Server-Token": "pm-acct_7Srv_first"}) as first:
        hook = first.post("/webhooks", json={"Url": "https://acme.example/pm"}).json()
        server = first.get("/server").json()["ID"]
    with client(**{"X-Postmark-Server-Token": "pm-acct_7Srv_regenerated"}) as again:
        assert [w["ID"] for w in again.get("/webhooks").json()["Webhooks"]] == [hook["ID"]]
        assert again.get("/server").json()["ID"] == server
    with client(**{"X-Postmark-Server-Token": "pm-another-server"}) as other:
        assert other.get("/webhooks").json()["Webhooks"] == []

    with client(**{"X-Postmark-Account-Token": "acct_7Acc_one"}) as one:
        one.post("/senders", json={"FromEmail": "billing@acme.example", "Name": "Billing"})
    with client(**{"X-Postmark-Account-Token": "acct_7Acc_two"}) as two:
        listed = two.get("/senders", params={"count": 500, "offset": 0}).json()
        assert [s["EmailAddress"] for s in listed["SenderSignatures"]] == ["billing@acme.example"]


def test_quo_keys_of_one_workspace_share_webhooks_and_numbers(sim: Simulator) -> None:
    sim.set_phone_numbers("acct_3Ws_first-key", [("+15555550142", "Front desk")])

    def client(key: str) -> httpx.Client:
        return httpx.Client(base_url=sim.base_url("quo"), headers={"Authorization": key})

    with client("acct_3Ws_first-key") as first:
        made = first.post(
            "/v1/webhooks/calls",
            json={"url": "https://acme.example/q", "events": ["call.completed"]},
        ).json()["data"]
        numbers = first.get("/v1/phone-numbers").json()["data"]
    with client("acct_3Ws_second-key") as second:
        assert [w["id"] for w in second.get("/v1/webhooks").json()["data"]] == [made["id"]]
        assert second.get("/v1/phone-numbers").json()["data"] == numbers
        assert [n["number"] for n in numbers] == ["+15555550142"]
    with client("quo-other-workspace") as other:
        assert other.get("/v1/webhooks").json()["data"] == []
        assert "+15555550142" not in [
            n["number"] for n in other.get("/v1/phone-numbers").json()["data"]
        ]
