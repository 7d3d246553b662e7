"""The provider-side kinds of the shipped catalog (SPEC section 8): Postmark and Quo webhooks,
Stripe's adopt and signing_secret, the optional account_token and admin_key credentials."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.core.catalog import Catalog, ResourceKind, load_catalog
from reconciler.core.desired import DesiredResource
from reconciler.core.manifest import load_manifests

HEAD = """\
apiVersion: reconciler/v1
kind: Organization
metadata: {{name: acme}}
spec:
  members: [{{user: ops@acme.example, permissions: [settings.edit]}}]
  connections:
    - provider: {provider}
      owner: ops@acme.example
      credentials: {credentials}
      resources:
"""  # resources: is line 10


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def check(
    tmp_path: Path,
    catalog: Catalog,
    provider: str,
    resources: str,
    credentials: str = '{api_key: "${KEY}"}',
) -> tuple[tuple[DesiredResource, ...], list[str]]:
    path = tmp_path / "acme.yaml"
    head = HEAD.format(provider=provider, credentials=credentials)
    path.write_text(head + textwrap.indent(textwrap.dedent(resources), " " * 8))
    env = {"KEY": "k", "ACCOUNT": "a", "ADMIN": "sk-ant-admin01-x"}
    desired, diags = load_manifests([path], catalog, env)
    conns = desired.organizations["acme"].connections if "acme" in desired.organizations else ()
    found = conns[0].resources if conns else ()
    return found, [f"{d.line}: {d.message}" for d in diags.errors]


def test_postmark_webhooks_default_to_the_outbound_stream(tmp_path: Path, catalog: Catalog):
    found, problems = check(
        tmp_path,
        catalog,
        "postmark",
        """\
        webhooks:
          - {url: "https://acme.example/pm", triggers: [bounce, delivery]}
          - {url: "https://acme.example/pm", message_stream: broadcast, triggers: [open]}
        """,
    )
    assert problems == []
    assert [r.identity for r in found] == [
        "outbound:https://acme.example/pm",
        "broadcast:https://acme.example/pm",
    ]
    assert found[0].spec["message_stream"] == "outbound"
    assert found[0].spec["triggers"] == ["bounce", "delivery"]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("{url: http://acme.example/pm, triggers: [open]}", "must be an https:// URL"),
        ("{url: https://acme.example/pm, triggers: []}", "needs at least 1 item"),
        ("{url: https://acme.example/pm, triggers: [opened]}", "must be one of: open, click"),
        ("{url: https://acme.example/pm}", "missing the required field 'triggers'"),
    ],
)
def test_postmark_webhooks_are_checked(tmp_path: Path, catalog: Catalog, item: str, message: str):
    _, problems = check(tmp_path, catalog, "postmark", f"webhooks:\n  - {item}\n")
    assert len(problems) == 1
    assert problems[0].startswith("12: ")
    assert message in problems[0]


def test_a_repeated_stream_and_url_is_refused(tmp_path: Path, catalog: Catalog):
    _, problems = check(
        tmp_path,
        catalog,
        "postmark",
        """\
        webhooks:
          - {url: "https://acme.example/pm", triggers: [open]}
          - {url: "https://acme.example/pm", message_stream: outbound, triggers: [click]}
        """,
    )
    assert problems == [
        "13: webhooks[1] of postmark repeats the message_stream and url of the item at line 12; "
        "each message_stream and url appears once"
    ]


def test_quo_webhooks_are_identified_by_type_and_url(tmp_path: Path, catalog: Catalog):
    found, problems = check(
        tmp_path,
        catalog,
        "quo",
        """\
        webhooks:
          - {type: messages, url: "https://acme.example/q", events: [message.received]}
          - type: call_summaries
            url: "https://acme.example/q"
            events: [call.summary.completed]
            label: Summaries
        """,
    )
    assert problems == []
    assert [r.identity for r in found] == [
        "messages:https://acme.example/q",
        "call_summaries:https://acme.example/q",
    ]
    _, problems = check(
        tmp_path,
        catalog,
        "quo",
        'webhooks:\n  - {type: faxes, url: "https://acme.example/q", events: [call.ringing]}\n',
    )
    assert len(problems) == 1
    assert "webhooks[0].type of quo must be one of: messages, calls" in problems[0]


@pytest.mark.parametrize(
    ("kind", "events", "allowed"),
    [
        ("messages", "[message.received, call.completed]", "message.received, message.delivered"),
        ("calls", "[call.ringing, message.delivered]", "call.ringing, call.completed, "),
        ("call_summaries", "[call.transcript.completed]", "call.summary.completed"),
        ("call_transcripts", "[call.summary.completed]", "call.transcript.completed"),
    ],
)
def test_quo_webhook_events_must_go_with_the_type(
    tmp_path: Path, catalog: Catalog, kind: str, events: str, allowed: str
):
    """providers.md: each Quo webhook type takes its own events; one of another type is an
    error naming the line, the field and the events the type allows."""
    resources = f"""\
        webhooks:
          - type: {kind}
            url: "https://acme.example/q"
            events: {events}
        """
    found, problems = check(tmp_path, catalog, "quo", resources)
    assert found == ()
    assert len(problems) == 1, problems
    wrong = events.strip("[]").split(", ")[-1]
    index = len(events.strip("[]").split(", "))
    assert problems[0].startswith(
        f"14: webhooks[0].events of quo item {index} ({wrong}) does not go with type: {kind}; "
        f"with type: {kind} it must be one of: {allowed}"
    )


def test_every_event_of_a_quo_webhook_type_is_accepted(tmp_path: Path, catalog: Catalog):
    found, problems = check(
        tmp_path,
        catalog,
        "quo",
        """\
        webhooks:
          - {type: messages, url: "https://a.ex/q", events: [message.received, message.delivered]}
          - type: calls
            url: "https://a.example/q"
            events: [call.ringing, call.completed, call.recording.completed]
          - {type: call_summaries, url: "https://a.ex/q", events: [call.summary.completed]}
          - {type: call_transcripts, url: "https://a.ex/q", events: [call.transcript.completed]}
        """,
    )
    assert problems == [] and len(found) == 4


@pytest.mark.parametrize(
    ("values_by", "message"),
    [
        ({"field": "type", "values": {"a": ["x", "zz"]}}, "lists values it lacks: ['zz']"),
        ({"field": "colour", "values": {"a": ["x"]}}, "must name another field of hooks"),
    ],
)
def test_a_catalog_values_by_must_fit_its_kind(values_by: dict, message: str) -> None:
    fields = [
        {"name": "type", "type": "enum", "values": ["a", "b"]},
        {"name": "url", "type": "https_url"},
        {"name": "events", "type": "list", "items": "enum", "values": ["x", "y"]},
    ]
    fields[2]["values_by"] = values_by
    with pytest.raises(ValidationError, match=re.escape(message)):
        ResourceKind.model_validate(
            {"name": "hooks", "shape": "list", "identity": "url", "fields": fields}
        )


def test_stripe_endpoints_take_adopt_and_a_signing_secret_reference(
    tmp_path: Path, catalog: Catalog
):
    found, problems = check(
        tmp_path,
        catalog,
        "stripe",
        """\
        webhook_endpoints:
          - url: https://acme.example/s
            events: [invoice.paid]
            description: Billing
            adopt: true
            signing_secret: ${ACME_STRIPE_WHSEC}
        """,
    )
    assert problems == []
    assert found[0].spec["signing_secret"] == "${ACME_STRIPE_WHSEC}"  # the reference, not a value
    assert found[0].spec["adopt"] is True


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("whsec_canary_literal", "must be a whole ${VAR} reference"),
        ("${RECONCILER_MASTER_KEY}", "refers to a RECONCILER_ variable"),
        ("${lower}", "invalid variable name"),
    ],
)
def test_a_signing_secret_must_be_a_reference(
    tmp_path: Path, catalog: Catalog, value: str, message: str
):
    _, problems = check(
        tmp_path,
        catalog,
        "stripe",
        f"""\
        webhook_endpoints:
          - {{url: "https://acme.example/s", events: [invoice.paid], signing_secret: "{value}"}}
        """,
    )
    assert len(problems) == 1
    assert message in problems[0]
    assert "canary" not in problems[0]


def test_optional_credentials_are_accepted(tmp_path: Path, catalog: Catalog):
    _, problems = check(
        tmp_path,
        catalog,
        "postmark",
        "sender_emails: [{email: a@acme.example, default: true}]\n",
        credentials='{api_key: "${KEY}", account_token: "${ACCOUNT}"}',
    )
    assert problems == []
    _, problems = check(
        tmp_path,
        catalog,
        "anthropic",
        "model: claude-sonnet-4-5\n",
        credentials='{api_key: "${KEY}", admin_key: "${ADMIN}"}',
    )
    assert problems == []


def test_remote_kinds_are_declared_in_the_catalog(catalog: Catalog):
    stripe = catalog.providers["stripe"].resource_kind("webhook_endpoints")
    assert stripe is not None and stripe.remote is not None
    assert stripe.remote.signing_secret is True
    assert stripe.remote.update == ["url", "events", "description"]
    assert stripe.remote.idempotency_key is True
    quo = catalog.providers["quo"].resource_kind("webhooks")
    assert quo is not None and quo.remote is not None and quo.remote.update == []
    senders = catalog.providers["postmark"].resource_kind("sender_emails")
    assert senders is not None and senders.remote is not None
    assert senders.remote.credential == "account_token"
