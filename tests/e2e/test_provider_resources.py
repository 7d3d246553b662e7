"""Resources at the provider (SPEC section 8), end to end through the CLI against the bundled
simulator: webhooks exist at Stripe, Postmark and Quo with exactly the declared fields, created
once; drift there shows up in plan and apply repairs it; objects made in the dashboards are
never touched unless adopted; signing secrets are stored encrypted and shown nowhere."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from reconciler.core.remote import signing_secret_field
from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.schema import AuditEntry, Credential, Instance, Resource
from reconciler.simulator import Simulator
from tests.conftest import CANARIES, Env, all_forms, assert_no_canary

STRIPE_KEY = CANARIES["ACME_STRIPE_SECRET_KEY"]
POSTMARK_KEY = CANARIES["ACME_POSTMARK_TOKEN"]
POSTMARK_ACCOUNT = CANARIES["ACME_POSTMARK_ACCOUNT_TOKEN"]
QUO_KEY = CANARIES["ACME_QUO_KEY"]
# what the shipped manifests/acme.yaml declares at each provider
STRIPE_URL = "https://acme.example/hooks/stripe"
POSTMARK_URL = "https://acme.example/hooks/postmark"
POSTMARK_BROADCAST_URL = "https://acme.example/hooks/postmark/broadcast"
QUO_MESSAGES_URL = "https://acme.example/hooks/quo/messages"
QUO_CALLS_URL = "https://acme.example/hooks/quo/calls"
ENDPOINT = f"acme/stripe/webhook_endpoints/{STRIPE_URL}"


def edit(env: Env, old: str, new: str) -> None:
    path = env.cwd / "manifests" / "acme.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def plan_json(env: Env, *args: str) -> dict[str, Any]:
    r = env.run("plan", "--format", "json", *args)
    assert r.exit_code == 0, r.output
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def dump(env: Env) -> str:
    """Every row of every table, as text (for canary searches and "nothing written")."""
    from sqlalchemy import inspect, text

    with env.session() as s:
        bind = s.get_bind()
        out = []
        for table in sorted(inspect(bind).get_table_names()):
            rows = s.execute(text(f"SELECT * FROM {table} ORDER BY 1")).all()
            out.append(f"{table}: {sorted(map(repr, rows))}")
        return "\n".join(out)


def enabled(hook: dict[str, Any]) -> set[str]:
    """The Postmark webhook's triggers that are on."""
    return {name for name, flags in hook["Triggers"].items() if flags["Enabled"]}


def writes(log: list[str]) -> list[str]:
    """The access log's requests that change something (all but GET), without the status."""
    return sorted(line.rsplit(" ", 1)[0] for line in log if not line.startswith("GET "))


def test_declared_webhooks_exist_at_the_providers_created_once(
    env: Env, logged: tuple[Simulator, list[str]]
) -> None:
    sim, log = logged
    r = env.run("plan")
    assert r.exit_code == 0, r.output
    assert "created at Stripe, which issues its signing secret" in r.stdout
    assert "created at Postmark" in r.stdout and "created at Quo" in r.stdout
    assert not writes(log), "plan only reads"
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    assert f"{ENDPOINT}: created at Stripe (we_" in r.stdout
    assert "its new signing secret is stored encrypted" in r.stdout
    for address in (
        f"acme/postmark/webhooks/outbound:{POSTMARK_URL}: created at Postmark (",
        f"acme/postmark/webhooks/broadcast:{POSTMARK_BROADCAST_URL}: created at Postmark (",
        "acme/postmark/sender_emails/billing@acme.example: created at Postmark (",
        f"acme/quo/webhooks/messages:{QUO_MESSAGES_URL}: created at Quo (OpenPhone) (WH",
        f"acme/quo/webhooks/calls:{QUO_CALLS_URL}: created at Quo (OpenPhone) (WH",
    ):
        assert address in r.stdout, r.stdout
    # each object was created once, with the path its kind takes; the Quo numbers are only read
    assert writes(log) == [
        "POST /postmark/senders",
        "POST /postmark/senders",
        "POST /postmark/webhooks",
        "POST /postmark/webhooks",
        "POST /quo/v1/webhooks/calls",
        "POST /quo/v1/webhooks/messages",
        "POST /stripe/v1/webhook_endpoints",
    ]

    # exactly the declared fields at each provider
    (endpoint,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    assert (endpoint["url"], endpoint["status"], endpoint["description"]) == (
        STRIPE_URL,
        "enabled",
        None,
    )
    assert endpoint["enabled_events"] == ["invoice.paid", "customer.subscription.deleted"]
    assert endpoint["metadata"]["reconciler_address"] == ENDPOINT
    hooks = {h["Url"]: h for h in sim.objects("postmark", "webhooks", POSTMARK_KEY)}
    assert sorted(hooks) == [POSTMARK_URL, POSTMARK_BROADCAST_URL]
    outbound, broadcast = hooks[POSTMARK_URL], hooks[POSTMARK_BROADCAST_URL]
    assert outbound["MessageStream"] == "outbound"  # the default stream
    assert enabled(outbound) == {"Delivery", "Bounce", "SpamComplaint"}
    assert broadcast["MessageStream"] == "broadcast"
    assert enabled(broadcast) == {"SubscriptionChange"}
    for hook in hooks.values():
        assert (hook["HttpAuth"], hook["HttpHeaders"]) == (None, [])
    senders = sim.objects("postmark", "senders", POSTMARK_ACCOUNT)
    assert sorted((s["EmailAddress"], s["Name"], s["Confirmed"]) for s in senders) == [
        ("billing@acme.example", "Acme Billing", False),
        ("support@acme.example", "Acme Support", False),
    ]
    assert sim.objects("postmark", "senders", POSTMARK_KEY) == []  # not the server token's
    quo = {w["url"]: w for w in sim.objects("quo", "webhooks", QUO_KEY)}
    assert sorted(quo) == [QUO_CALLS_URL, QUO_MESSAGES_URL]
    messages, calls = quo[QUO_MESSAGES_URL], quo[QUO_CALLS_URL]
    assert (messages["events"], messages["label"]) == (
        ["message.received", "message.delivered"],
        "Acme messages",
    )
    assert (calls["events"], calls["label"]) == (["call.completed"], None)
    assert {w["status"] for w in quo.values()} == {"enabled"}

    with env.session() as s:
        rows = {r.kind + ":" + r.identity: r for r in s.scalars(select(Resource))}
        assert rows[f"webhook_endpoints:{STRIPE_URL}"].remote_id == endpoint["id"]
        assert rows[f"webhooks:outbound:{POSTMARK_URL}"].remote_id == str(outbound["ID"])
        assert rows[f"webhooks:broadcast:{POSTMARK_BROADCAST_URL}"].remote_id == str(
            broadcast["ID"]
        )
        assert rows[f"webhooks:messages:{QUO_MESSAGES_URL}"].remote_id == messages["id"]
        assert rows[f"webhooks:calls:{QUO_CALLS_URL}"].remote_id == calls["id"]
        assert {r.identity for r in rows.values() if r.kind == "phone_numbers"} == {
            "+15555550100",
            "+14155550100",
        }
        fields = {c.field for c in s.scalars(select(Credential))}
        assert signing_secret_field("webhook_endpoints", STRIPE_URL) in fields
        assert signing_secret_field("webhooks", f"messages:{QUO_MESSAGES_URL}") in fields
        assert signing_secret_field("webhooks", f"calls:{QUO_CALLS_URL}") in fields
        actions = [a.details for a in s.scalars(select(AuditEntry))]
        assert any('"at_provider"' in d and endpoint["id"] in d for d in actions)

    # the second plan changes nothing and only reads
    log.clear()
    r = env.run("plan", "--detailed-exitcode")
    assert r.exit_code == 0 and "No changes." in r.stdout, r.output
    assert log and not writes(log), log
    r = env.run("apply")
    assert r.exit_code == 0 and "No changes." in r.stdout
    assert not writes(log), log
    assert len(sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)) == 1
    assert len(sim.objects("postmark", "webhooks", POSTMARK_KEY)) == 2
    assert len(sim.objects("postmark", "senders", POSTMARK_ACCOUNT)) == 2
    assert len(sim.objects("quo", "webhooks", QUO_KEY)) == 2

    # the signing secrets are stored, encrypted, and shown nowhere
    for secret in (endpoint["secret"], messages["key"], calls["key"]):
        for out in (r.output, dump(env), env.run("plan", "--format", "json").stdout):
            for form in all_forms(secret):
                assert form not in out
    assert_no_canary(dump(env), "the database")


def test_deleted_at_stripe_is_re_created_with_a_new_secret(
    env: Env, logged: tuple[Simulator, list[str]]
) -> None:
    sim, _ = logged
    assert env.run("apply").exit_code == 0
    (first,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    sim.delete_object("stripe", "webhook_endpoints", STRIPE_KEY, first["id"])

    assert "No changes." in env.run("plan", "--refresh=false").stdout
    doc = plan_json(env)
    (change,) = doc["changes"]
    assert change["address"] == ENDPOINT and change["action"] == "create"
    assert f"deleted at Stripe (was {first['id']})" in change["reason"]
    assert "a new signing secret will be issued" in change["reason"]
    assert change["remote"][0]["source"] == "provider"
    r = env.run("plan")
    assert "deleted at Stripe" in r.stdout
    assert "deleted at Stripe" in env.run("plan", "--format", "markdown").stdout

    r = env.run("apply")
    assert r.exit_code == 0, r.output
    (second,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    assert second["id"] != first["id"] and second["secret"] != first["secret"]
    with env.session() as s:
        creds = [
            c
            for c in s.scalars(select(Credential))
            if c.field == signing_secret_field("webhook_endpoints", STRIPE_URL)
        ]
        assert len(creds) == 1  # the new secret replaced the old one
        row = s.scalar(select(Resource).where(Resource.kind == "webhook_endpoints"))
        assert row is not None and row.remote_id == second["id"]
        assert row.remote_generation == 1 and row.remote_replaces == first["id"]
    assert "No changes." in env.run("plan").stdout


def test_changed_at_the_provider_is_repaired_in_place(
    env: Env, logged: tuple[Simulator, list[str]]
) -> None:
    sim, _ = logged
    assert env.run("apply").exit_code == 0
    (endpoint,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    (hook,) = [
        h for h in sim.objects("postmark", "webhooks", POSTMARK_KEY) if h["Url"] == POSTMARK_URL
    ]
    sim.change_object(
        "stripe", "webhook_endpoints", STRIPE_KEY, endpoint["id"], {"enabled_events": ["x.y"]}
    )
    sim.change_object(
        "postmark", "webhooks", POSTMARK_KEY, str(hook["ID"]), {"Url": "https://evil.example/h"}
    )
    assert "No changes." in env.run("plan", "--refresh=false").stdout
    doc = plan_json(env)
    reasons = {c["address"]: c["reason"] for c in doc["changes"]}
    assert reasons[ENDPOINT] == "changed at Stripe: events (updated in place)"
    assert "changed at Postmark: url (updated in place)" in reasons.values()
    assert all(c["action"] == "update" for c in doc["changes"])

    r = env.run("apply")
    assert r.exit_code == 0, r.output
    assert "updated in place at Stripe" in r.stdout
    assert "updated in place at Postmark" in r.stdout
    (repaired,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    assert repaired["id"] == endpoint["id"]
    assert repaired["enabled_events"] == ["invoice.paid", "customer.subscription.deleted"]
    fixed = {h["ID"]: h for h in sim.objects("postmark", "webhooks", POSTMARK_KEY)}
    assert len(fixed) == 2 and fixed[hook["ID"]]["Url"] == POSTMARK_URL
    assert "No changes." in env.run("plan").stdout


def test_a_dashboard_endpoint_is_a_conflict_until_adopted(
    env: Env, logged: tuple[Simulator, list[str]]
) -> None:
    sim, _ = logged
    made = sim.seed_object(
        "stripe",
        "webhook_endpoints",
        STRIPE_KEY,
        {"url": STRIPE_URL, "enabled_events[]": ["invoice.paid"]},
    )
    r = env.run("plan")
    assert r.exit_code == 1
    assert f"Error: manifests/acme.yaml:13: {ENDPOINT}: " in r.stderr
    assert made["id"] in r.stderr and "was not created by the reconciler" in r.stderr
    assert "adopt: true" in r.stderr
    # only that connection is left out: the rest of the plan stands
    assert "# acme/stripe" not in r.stdout and "# acme/postmark" in r.stdout
    assert "# globex/stripe" in r.stdout
    assert "Left out of the plan because of errors" in r.stdout
    r = env.run("plan", "--format", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["format_version"] == "1.1"
    (error,) = doc["errors"]
    assert error["address"] == ENDPOINT and error["connection"] == "acme/stripe"
    assert made["id"] in error["message"]
    assert not [c for c in doc["changes"] if c["address"].startswith("acme/stripe")]
    r = env.run("plan", "--out", str(env.cwd / "saved.json"))
    assert r.exit_code == 1 and "it was not saved" in r.stderr
    assert not (env.cwd / "saved.json").exists()

    r = env.run("apply")
    assert r.exit_code == 1
    assert f"Error: manifests/acme.yaml:13: {ENDPOINT}: " in r.stderr and made["id"] in r.stderr
    assert_applied_except(env, "acme", "stripe")
    (untouched,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    assert (untouched["id"], untouched["enabled_events"], untouched["metadata"]) == (
        made["id"],
        ["invoice.paid"],
        {},
    )

    edit(
        env,
        "events: [invoice.paid, customer.subscription.deleted]",
        "events: [invoice.paid, customer.subscription.deleted]\n            adopt: true\n"
        "            signing_secret: ${ACME_STRIPE_WHSEC}",
    )
    env.vars["ACME_STRIPE_WHSEC"] = made["secret"]  # the receiver's, from the dashboard
    doc = plan_json(env)
    assert ("adopt" in [c["action"] for c in doc["changes"]]) or any(
        s["action"] == "adopt" for c in doc["changes"] for s in c.get("remote", [])
    )
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    (adopted,) = sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)
    assert adopted["id"] == made["id"] and adopted["secret"] == made["secret"]
    assert adopted["enabled_events"] == ["invoice.paid", "customer.subscription.deleted"]
    with env.session() as s:
        row = s.scalar(select(Resource).where(Resource.kind == "webhook_endpoints"))
        assert row is not None and row.remote_id == made["id"] and row.remote_adopted
        field = signing_secret_field("webhook_endpoints", STRIPE_URL)
        (cred,) = [c for c in s.scalars(select(Credential)) if c.field == field]
        addr = CredentialAddress("acme", "stripe", "ops@acme.example", field)
        assert KeyRing.from_env(env.vars).decrypt(cred.ciphertext, addr) == made["secret"]
    assert made["secret"] not in r.output
    assert "No changes." in env.run("plan").stdout


def test_a_quo_number_missing_from_the_workspace_is_an_error_naming_it(
    env: Env, logged: tuple[Simulator, list[str]]
) -> None:
    edit(env, '{number: "+15555550100"', '{number: "+15555550177"')
    r = env.run("plan")
    assert r.exit_code == 1
    assert "Error: manifests/acme.yaml:36: acme/quo/phone_numbers/+15555550177: " in r.stderr
    assert "+15555550177 is not a number of this quo workspace" in r.stderr
    assert "# acme/quo" not in r.stdout and "# acme/stripe" in r.stdout
    r = env.run("apply")
    assert r.exit_code == 1
    assert "+15555550177 is not a number of this quo workspace" in r.stderr
    assert "Apply finished with errors" in r.stderr
    assert_applied_except(env, "acme", "quo")
    edit(env, '{number: "+15555550177"', '{number: "+15555550100"')
    assert env.run("apply").exit_code == 0
    assert "No changes." in env.run("plan").stdout


def assert_applied_except(env: Env, organization: str, provider: str) -> None:
    """The failing connection has no row; the others of its organization and the other
    organization were applied."""
    with env.session() as s:
        made = {(i.organization, i.provider) for i in s.scalars(select(Instance))}
        audited = {(a.organization, a.target) for a in s.scalars(select(AuditEntry))}
    assert (organization, provider) not in made
    assert {("acme", "postmark"), ("globex", "stripe"), ("globex", "postmark")} <= made
    assert ("acme", "stripe" if provider != "stripe" else "quo") in made
    assert not [a for a in audited if str(a[1]).startswith(f"{organization}/{provider}")]


def test_thirty_webhooks_on_one_key_see_no_429(
    env: Env, logged: tuple[Simulator, list[str]]
) -> None:
    """Stripe test mode allows 25 requests per second per key, Quo 10: apply paces its
    calls per key (shared by the run), so 30 webhooks each are made without a 429."""
    sim, log = logged
    stripe = "".join(
        f"          - {{url: https://acme.example/hooks/s{i}, events: [invoice.paid]}}\n"
        for i in range(29)
    )
    quo = "".join(
        f"          - {{type: calls, url: https://acme.example/hooks/q{i}, "
        "events: [call.completed]}\n"
        for i in range(28)
    )
    edit(
        env,
        "            events: [invoice.paid, customer.subscription.deleted]\n",
        "            events: [invoice.paid, customer.subscription.deleted]\n" + stripe,
    )
    # the shipped manifest declares two Quo webhooks: 28 more make 30
    anchor = "            events: [call.completed]\n"
    edit(env, anchor, anchor + quo)
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    assert len(sim.objects("stripe", "webhook_endpoints", STRIPE_KEY)) == 30
    assert len(sim.objects("quo", "webhooks", QUO_KEY)) == 30
    assert not [line for line in log if line.endswith(" 429")], log
    assert "No changes." in env.run("plan").stdout


def test_postmark_senders_are_made_with_the_account_token_only(
    env: Env, logged: tuple[Simulator, list[str]]
) -> None:
    """acme's Postmark names an account token: its senders are made at Postmark with it.
    globex's names none: its sender is stored only, and nothing is sent to /senders for it."""
    sim, log = logged
    r = env.run("apply")
    assert r.exit_code == 0, r.output
    senders = sim.objects("postmark", "senders", POSTMARK_ACCOUNT)
    assert sorted((s["EmailAddress"], s["Name"]) for s in senders) == [
        ("billing@acme.example", "Acme Billing"),
        ("support@acme.example", "Acme Support"),
    ]
    assert "globex/postmark/sender_emails/hello@globex.example: created\n" in r.stdout
    assert sim.objects("postmark", "senders", CANARIES["GLOBEX_POSTMARK_TOKEN"]) == []
    assert writes(log).count("POST /postmark/senders") == 2
    assert "No changes." in env.run("plan").stdout
    assert_no_canary(r.output)


def test_organizations_sharing_a_quo_key_see_no_429(
    env: Env, logged: tuple[Simulator, list[str]]
) -> None:
    """Twelve organizations share one Quo key (10 requests/s, its health check included):
    their health checks, the reads of their webhooks and the creates all draw from one bucket
    for the key, so even twelve checks at once never push the key past its limit."""
    sim, log = logged
    shared = "quo-shared-by-twelve"
    names = [f"org{i:02d}" for i in range(12)]
    folder = env.cwd / "shared"
    folder.mkdir()
    for name in names:
        (folder / f"{name}.yaml").write_text(
            "apiVersion: reconciler/v1\nkind: Organization\n"
            f"metadata: {{name: {name}}}\n"
            "spec:\n"
            f"  members: [{{user: ops@{name}.example, permissions: [settings.edit]}}]\n"
            "  connections:\n"
            "    - provider: quo\n"
            f"      owner: ops@{name}.example\n"
            '      credentials: {api_key: "${SHARED_QUO_KEY}"}\n'
            "      resources:\n"
            "        webhooks:\n"
            f"          - {{type: messages, url: https://{name}.example/hooks/quo, "
            "events: [message.received]}\n"
        )
    env.vars["SHARED_QUO_KEY"] = shared
    r = env.run("apply", "shared", "--parallelism", "20")
    assert r.exit_code == 0, r.output
    assert len(sim.objects("quo", "webhooks", shared)) == 12
    checks = [line for line in log if line.startswith("GET /quo/v1/phone-numbers")]
    assert len(checks) == 12, log  # one health check per organization, none repeated
    assert not [line for line in log if line.endswith(" 429")], log
