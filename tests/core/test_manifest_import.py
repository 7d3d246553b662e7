"""The pure half of `reconciler import`: names, YAML scalars and round trips."""

from __future__ import annotations

import pytest

from reconciler.core.catalog import load_catalog
from reconciler.core.manifest_import import _scalar, import_organizations, suggested_variable
from reconciler.core.state import Observed, ObservedConnection, ObservedInstance, ObservedResource
from reconciler.core.yamlsafe import load_yaml_documents
from tests.conftest import CATALOG


@pytest.mark.parametrize(
    ("org", "provider", "variable"),
    [
        ("acme", "google_maps", "ACME_GOOGLE_MAPS_API_KEY"),
        ("acme-corp", "stripe", "ACME_CORP_STRIPE_API_KEY"),
        ("3m", "stripe", "ORG_3M_STRIPE_API_KEY"),
        ("reconciler", "stripe", "ORG_RECONCILER_STRIPE_API_KEY"),
    ],
)
def test_suggested_variables_are_valid_names(org: str, provider: str, variable: str) -> None:
    assert suggested_variable(org, provider, "api_key") == variable


@pytest.mark.parametrize(
    "value",
    [
        "+15555550100",
        "yes",
        "On",
        "null",
        "",
        "a: b",
        "x #y",
        "#x",
        "- x",
        "[x]",
        "{x}",
        "'q'",
        '"q"',
        "12",
        "1e3",
        "Zoë",
        "tab\there",
        "trailing ",
        "https://x.example/h?a=1&b=2",
        "Acme Billing",
    ],
)
def test_scalars_read_back_as_themselves(value: str) -> None:
    (doc,) = load_yaml_documents(f"k: {_scalar(value)}\n".encode(), "t")
    assert doc.plain() == {"k": value}


def test_awkward_values_round_trip_and_output_is_deterministic() -> None:
    catalog = load_catalog(CATALOG)
    spec = {"email": "a@x.example", "name": "Ops: #1, [main]", "default": True}
    inst = ObservedInstance(
        1,
        "acme",
        "postmark",
        "active",
        "ui",
        (ObservedConnection(1, "ops@x.example", "connected", "ui"),),
        (ObservedResource(1, "sender_emails", "a@x.example", spec, True, "ui"),),
    )
    observed = Observed(instances={("acme", "postmark"): inst}, lineage="L")
    (a,) = import_organizations(catalog, observed, ["acme"], source="db")
    (b,) = import_organizations(catalog, observed, ["acme"], source="db")
    assert a.text == b.text
    (doc,) = load_yaml_documents(a.text.encode(), "t")
    item = doc.plain()["spec"]["connections"][0]["resources"]["sender_emails"][0]
    assert item == {"email": "a@x.example", "name": "Ops: #1, [main]", "default": True}
