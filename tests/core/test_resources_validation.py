"""Resources checked generically against the catalog's kinds: shapes, types, identity, default."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.core.catalog import Catalog, load_catalog
from reconciler.core.desired import DesiredResource
from reconciler.core.errors import Diagnostics
from reconciler.core.manifest import load_manifests

CATALOG_DIR = Path(__file__).parents[1] / "fixtures" / "catalog_min"

HEAD = """\
apiVersion: reconciler/v1
kind: Organization
metadata: {{name: acme}}
spec:
  members: [{{user: ops@acme.example, permissions: [settings.edit]}}]
  connections:
    - provider: {provider}
      owner: ops@acme.example
      credentials: {{api_key: "${{KEY}}"}}
      resources:
"""  # resources: is line 10, what the test writes starts on line 11


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CATALOG_DIR)


def check(
    tmp_path: Path, catalog: Catalog, provider: str, resources: str
) -> tuple[tuple[DesiredResource, ...], list[str]]:
    """Resources of one connection, and the errors as 'line: message'."""
    path = tmp_path / "acme.yaml"
    path.write_text(
        HEAD.format(provider=provider) + textwrap.indent(textwrap.dedent(resources), " " * 8)
    )
    desired, diags = load_manifests([path], catalog, {"KEY": "k"})
    conns = desired.organizations["acme"].connections if "acme" in desired.organizations else ()
    return (conns[0].resources if conns else ()), errors(diags)


def errors(diags: Diagnostics) -> list[str]:
    return [f"{d.line}: {d.message}" for d in diags.errors]


def test_every_shape_builds_desired_resources(tmp_path: Path, catalog: Catalog):
    found, problems = check(
        tmp_path,
        catalog,
        "postmark",
        """\
        sender_emails:
          - {email: billing@acme.example, name: Acme Billing, default: true}
          - {email: support@acme.example}
        """,
    )
    assert problems == []
    assert found == (
        DesiredResource(
            "sender_emails",
            "billing@acme.example",
            {"default": True, "email": "billing@acme.example", "name": "Acme Billing"},
            True,
            12,
        ),
        DesiredResource(
            "sender_emails",
            "support@acme.example",
            {"default": False, "email": "support@acme.example"},
            False,
            13,
        ),
    )
    assert list(found[0].spec) == sorted(found[0].spec)
    found, problems = check(
        tmp_path,
        catalog,
        "anthropic",
        """\
        model: claude-sonnet-4-5
        usage_monitoring: {monthly_budget_usd: 500, alert_at_percent: 80}
        """,
    )
    assert problems == []
    assert found == (
        DesiredResource("model", "model", {"value": "claude-sonnet-4-5"}, False, 11),
        DesiredResource(
            "usage_monitoring",
            "usage_monitoring",
            {"alert_at_percent": 80, "monthly_budget_usd": 500},
            False,
            12,
        ),
    )


def test_no_resources_and_empty_lists_are_fine(tmp_path: Path, catalog: Catalog):
    assert check(tmp_path, catalog, "quo", "phone_numbers: []\n") == ((), [])
    assert check(tmp_path, catalog, "quo", "{}\n") == ((), [])


def test_unknown_kind_and_kinds_of_a_provider_without_resources(tmp_path: Path, catalog: Catalog):
    assert check(tmp_path, catalog, "stripe", "webhooks: []\n")[1] == [
        "11: provider stripe has no resource kind 'webhooks'; it has: webhook_endpoints"
    ]
    assert check(tmp_path, catalog, "mapbox", "styles: []\n")[1] == [
        "11: provider mapbox has no resource kind 'styles'; it has no resources"
    ]
    assert check(tmp_path, catalog, "stripe", "[]\n")[1] == [
        "10: resources of stripe must be a mapping of resource kind to its settings"
    ]


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        (
            "[{email: a@acme.example, default: true}, {email: b@acme.example, default: true}]",
            "11: sender_emails of postmark has 2 items with default: true (lines 11, 11); "
            "exactly one may be the default",
        ),
        (
            "[{email: a@acme.example}, {email: b@acme.example}]",
            "11: sender_emails of postmark needs exactly one item with default: true; none has it",
        ),
        (
            "[{email: a@acme.example, default: true}, {email: A@acme.example}]",
            "11: sender_emails[1] of postmark repeats the email of the item at line 11; each email "
            "appears once",
        ),
        (
            "[{email: not-an-email, default: true}]",
            "11: sender_emails[0].email of postmark is not an email address (name@domain.example)",
        ),
        (
            "[{name: No address, default: true}]",
            "11: sender_emails[0] of postmark is missing the required field 'email'",
        ),
        (
            "[{email: a@acme.example, default: 'yes'}]",
            "11: sender_emails[0].default of postmark must be true or false",
        ),
        (
            "[{email: a@acme.example, default: true, name: [x]}]",
            "11: sender_emails[0].name of postmark must be text",
        ),
        ("{email: a@acme.example}", "11: sender_emails of postmark must be a list"),
        (
            "[a@acme.example]",
            "11: sender_emails[0] of postmark must be a mapping with the fields: "
            "email, name, default",
        ),
    ],
)
def test_sender_email_problems(tmp_path: Path, catalog: Catalog, items: str, problem: str):
    assert check(tmp_path, catalog, "postmark", f"sender_emails: {items}\n")[1] == [problem]


def test_two_defaults_on_separate_lines(tmp_path: Path, catalog: Catalog):
    _, problems = check(
        tmp_path,
        catalog,
        "quo",
        """\
        phone_numbers:
          - {number: "+15555550100", default: true}
          - {number: "+15555550101"}
          - {number: "+15555550102", default: true}
        """,
    )
    assert problems == [
        "14: phone_numbers of quo has 2 items with default: true (lines 12, 14); "
        "exactly one may be the default"
    ]


def test_phone_number_read_as_a_number_gets_a_hint(tmp_path: Path, catalog: Catalog):
    found, problems = check(
        tmp_path, catalog, "quo", "phone_numbers: [{number: +15555550100, default: true}]\n"
    )
    assert problems == [
        "11: phone_numbers[0].number of quo was read as a number: write the "
        'E.164 phone number in quotes, e.g. "+15555550100"'
    ]
    assert found == ()


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("'+15555550100'", True),
        ("'+4930123456'", True),
        ("'+1 555 555 0100'", False),
        ("'15555550100'", False),
        ("'+05555550100'", False),
        ("'+1234567890123456'", False),
        ("'+12345'", False),
    ],
)
def test_phone_numbers_are_e164(tmp_path: Path, catalog: Catalog, number: str, ok: bool):
    found, problems = check(
        tmp_path, catalog, "quo", f"phone_numbers: [{{number: {number}, default: true}}]\n"
    )
    if ok:
        assert problems == [] and found[0].identity == number.strip("'")
    else:
        assert problems == [
            "11: phone_numbers[0].number of quo is not an E.164 phone number "
            "('+', country code and number, digits only, e.g. +15555550100)"
        ]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://acme.example/hooks?x=1", None),
        ("http://acme.example/hooks", "must be an https:// URL"),
        ("ftp://acme.example/hooks", "must be an https:// URL"),
        ("https:///hooks", "has no host name"),
        (
            "https://user:pw@acme.example/hooks",
            "must not carry a user name or password; the URL is stored and shown in plans",
        ),
        (
            "https://acme.example/hooks?token=abc",
            "carries a credential in its query string (parameter 'token'); "
            "the URL is stored and shown in plans: authenticate the endpoint another way",
        ),
        ("https://acme.example:99999/hooks", "is not a valid URL"),
    ],
)
def test_webhook_urls(tmp_path: Path, catalog: Catalog, url: str, problem: str | None):
    found, problems = check(
        tmp_path,
        catalog,
        "stripe",
        f"webhook_endpoints: [{{url: '{url}', events: [invoice.paid]}}]\n",
    )
    if problem is None:
        assert problems == [] and found[0].identity == url
    else:
        assert problems == [f"11: webhook_endpoints[0].url of stripe {problem}"]
        assert "abc" not in problems[0] and "pw@" not in problems[0]


def test_webhook_events(tmp_path: Path, catalog: Catalog):
    _, problems = check(
        tmp_path,
        catalog,
        "stripe",
        """\
        webhook_endpoints:
          - url: https://acme.example/a
            events: ['*']
          - url: https://acme.example/b
            events: [invoice.paid, InvoicePaid, invoice]
          - url: https://acme.example/c
            events: []
          - url: https://acme.example/a
            events: [invoice.paid]
        """,
    )
    pattern = r"^([a-z_]+(\.[a-z_]+)+|\*)$"
    assert problems == [
        f"15: webhook_endpoints[1].events of stripe item 2 does not match the pattern {pattern} "
        "(event names of the form noun.verb, or *)",
        f"15: webhook_endpoints[1].events of stripe item 3 does not match the pattern {pattern} "
        "(event names of the form noun.verb, or *)",
        "17: webhook_endpoints[2].events of stripe needs at least 1 item",
        "18: webhook_endpoints[3] of stripe repeats the url of the item at line 12; each url "
        "appears once",
    ]


@pytest.mark.parametrize(
    ("resources", "problem"),
    [
        (
            "model: claude-opus-1",
            "11: model of anthropic must be one of: claude-sonnet-4-5, claude-haiku-4-5",
        ),
        ("model:", "11: model of anthropic needs a value"),
        (
            "usage_monitoring: {monthly_budget_usd: 5, alert_at_percent: 0}",
            "11: usage_monitoring.alert_at_percent of anthropic must be at least 1",
        ),
        (
            "usage_monitoring: {monthly_budget_usd: 5, alert_at_percent: 101}",
            "11: usage_monitoring.alert_at_percent of anthropic must be at most 100",
        ),
        (
            "usage_monitoring: {monthly_budget_usd: 5, alert_at_percent: 50.5}",
            "11: usage_monitoring.alert_at_percent of anthropic must be a whole number",
        ),
        (
            "usage_monitoring: {monthly_budget_usd: -1, alert_at_percent: 50}",
            "11: usage_monitoring.monthly_budget_usd of anthropic must be at least 0",
        ),
        (
            "usage_monitoring: {monthly_budget_usd: .nan, alert_at_percent: 50}",
            "11: usage_monitoring.monthly_budget_usd of anthropic must be a finite number",
        ),
        (
            "usage_monitoring: {monthly_budget_usd: true, alert_at_percent: 50}",
            "11: usage_monitoring.monthly_budget_usd of anthropic must be a number",
        ),
        (
            "usage_monitoring: {monthly_budget_usd: 5, alert_at_percent: 50, enabled: 'on'}",
            "11: usage_monitoring.enabled of anthropic must be true or false",
        ),
        (
            "usage_monitoring: {alert_at_percent: 50}",
            "11: usage_monitoring of anthropic is missing the required field 'monthly_budget_usd'",
        ),
        (
            "usage_monitoring: [50]",
            "11: usage_monitoring of anthropic must be a mapping with the fields: "
            "monthly_budget_usd, alert_at_percent, enabled",
        ),
    ],
)
def test_value_and_object_kinds(tmp_path: Path, catalog: Catalog, resources: str, problem: str):
    assert check(tmp_path, catalog, "anthropic", resources + "\n")[1] == [problem]


def test_all_resource_problems_at_once(tmp_path: Path, catalog: Catalog):
    _, problems = check(
        tmp_path,
        catalog,
        "postmark",
        """\
        sender_emails:
          - {email: bad, default: true, extra: 1}
          - {email: b@acme.example, default: true}
        templates: []
        """,
    )
    assert [p.split(":")[0] for p in problems] == ["12", "12", "13", "14"]
