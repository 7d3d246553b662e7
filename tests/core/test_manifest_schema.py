"""`reconciler schema`: the JSON Schema of manifests, from the catalog in effect.

Besides these tests, ``tests/schema_witness.py`` checks every manifest the validator accepts
anywhere in the suite against the schema.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.core.catalog import load_catalog
from reconciler.core.manifest import load_manifests
from reconciler.core.yamlsafe import load_yaml_documents
from tests.conftest import CATALOG, MANIFESTS, REPO

CATALOG_MIN = REPO / "tests" / "fixtures" / "catalog_min"


def schema_of(*args: str) -> dict:
    r = CliRunner().invoke(cli, ["schema", *args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    schema = json.loads(r.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def documents(path: Path) -> list:
    return [d.plain() for d in load_yaml_documents(path.read_bytes(), str(path))]


def schema_errors(schema: dict, doc: object) -> list[str]:
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]


def test_the_shipped_manifests_validate_against_the_schema() -> None:
    schema = schema_of()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    files = sorted(MANIFESTS.glob("*.yaml"))
    assert files
    for f in files:
        for doc in documents(f):
            assert schema_errors(schema, doc) == [], f


def test_the_schema_names_the_catalog_in_effect() -> None:
    schema = schema_of()
    conn = schema["properties"]["spec"]["properties"]["connections"]["items"]
    assert conn["properties"]["provider"]["enum"] == sorted(p.stem for p in CATALOG.glob("*.yaml"))
    rules = {r["if"]["properties"]["provider"]["const"]: r["then"] for r in conn["allOf"]}
    assert set(rules["postmark"]["properties"]["resources"]["properties"]) >= {"sender_emails"}
    mapping, keep = rules["stripe"]["properties"]["credentials"]["anyOf"]
    assert mapping["properties"]["api_key"]["pattern"]
    assert keep == {"const": "keep"}
    # another catalog, another schema
    other = schema_of("--catalog", str(CATALOG_MIN))
    conn = other["properties"]["spec"]["properties"]["connections"]["items"]
    assert "billing_sync" in conn["properties"]["provider"]["enum"]


def test_the_output_is_the_same_every_time() -> None:
    a = CliRunner().invoke(cli, ["schema"]).stdout
    assert a == CliRunner().invoke(cli, ["schema"]).stdout


VALID = """\
apiVersion: reconciler/v1
kind: Organization
metadata: {name: acme}
spec:
  members: [{user: ops@acme.example, permissions: [settings.edit]}]
  connections:
    - provider: stripe
      owner: ops@acme.example
      credentials: {api_key: "${ACME_STRIPE}"}
"""

# (what is wrong, the change to VALID): each is refused by the validator and by the schema
SHAPE_PROBLEMS = [
    ("unknown top-level field", VALID + "status: {}\n"),
    ("unknown spec field", VALID.replace("spec:\n", "spec:\n  owners: []\n")),
    ("unknown connection field", VALID + "      region: eu\n"),
    ("unknown provider", VALID.replace("provider: stripe", "provider: paypal")),
    ("unknown credential field", VALID.replace("{api_key:", "{token:")),
    ("unknown resource kind", VALID + "      resources: {phone_numbers: []}\n"),
    (
        "unknown resource field",
        VALID + "      resources:\n        webhook_endpoints:\n"
        "          - {url: https://a.example/h, events: [x], colour: red}\n",
    ),
    ("wrong type: allowEmpty", VALID.replace("spec:\n", "spec:\n  allowEmpty: yes please\n")),
    ("wrong type: connections", VALID.split("  connections:")[0] + "  connections: stripe\n"),
    ("wrong type: adopt", VALID + "      adopt: 1\n"),
    ("wrong type: resource list", VALID + "      resources: {webhook_endpoints: {url: x}}\n"),
    (
        "credentials neither a mapping nor keep",
        VALID.replace('{api_key: "${ACME_STRIPE}"}', "kept"),
    ),
    ("literal secret", VALID.replace('"${ACME_STRIPE}"', "sk_live_literal")),
    ("reserved variable", VALID.replace("ACME_STRIPE", "RECONCILER_ENCRYPTION_KEYS")),
    ("toggle on a provider without one", VALID + "      active: false\n"),
    ("wrong apiVersion", VALID.replace("reconciler/v1", "reconciler/v2")),
    ("missing owner", VALID.replace("      owner: ops@acme.example\n", "")),
    ("bad deletionPolicy", VALID + "      deletionPolicy: destroy\n"),
    ("bad permission", VALID.replace("[settings.edit]", "[settings.admin]")),
    (
        "a Quo webhook event its type does not take",
        VALID.replace("provider: stripe", "provider: quo") + "      resources:\n        webhooks:\n"
        "          - {type: call_summaries, url: https://a.example/h, events: [call.completed]}\n",
    ),
]


@pytest.mark.parametrize(("problem", "text"), SHAPE_PROBLEMS, ids=[p for p, _ in SHAPE_PROBLEMS])
def test_documents_refused_for_their_shape_are_refused_by_the_schema(
    tmp_path: Path, problem: str, text: str
) -> None:
    catalog = load_catalog(CATALOG)
    path = tmp_path / "acme.yaml"
    path.write_text(textwrap.dedent(text))
    _, diags = load_manifests([path], catalog, {"ACME_STRIPE": "sk_test_x"})
    assert diags.errors, f"the validator accepts: {problem}"
    assert schema_errors(schema_of(), documents(path)[0]), f"the schema accepts: {problem}"


def test_a_valid_document_passes_both(tmp_path: Path) -> None:
    catalog = load_catalog(CATALOG)
    path = tmp_path / "acme.yaml"
    path.write_text(VALID)
    _, diags = load_manifests([path], catalog, {"ACME_STRIPE": "sk_test_x"})
    assert not diags.errors
    assert schema_errors(schema_of(), documents(path)[0]) == []


def test_the_events_of_each_quo_webhook_type_are_in_the_schema(tmp_path: Path) -> None:
    """Quo's webhook types each take their own events: the schema narrows ``events`` by
    ``type`` exactly as the validator does, and accepts what it accepts."""
    schema = schema_of()
    conn = schema["properties"]["spec"]["properties"]["connections"]["items"]
    rules = {r["if"]["properties"]["provider"]["const"]: r["then"] for r in conn["allOf"]}
    item = rules["quo"]["properties"]["resources"]["properties"]["webhooks"]["items"]
    narrowed = {
        r["if"]["properties"]["type"]["const"]: r["then"]["properties"]["events"]["items"]["enum"]
        for r in item["allOf"]
    }
    assert narrowed["call_summaries"] == ["call.summary.completed"]
    assert set(narrowed) == {"messages", "calls", "call_summaries", "call_transcripts"}
    path = tmp_path / "acme.yaml"
    path.write_text(
        VALID.replace("provider: stripe", "provider: quo") + "      resources:\n        webhooks:\n"
        "          - {type: calls, url: https://a.example/h, events: [call.ringing]}\n"
    )
    _, diags = load_manifests([path], load_catalog(CATALOG), {"ACME_STRIPE": "k"})
    assert not diags.errors
    assert schema_errors(schema, documents(path)[0]) == []


def test_the_witness_fails_a_test_whose_accepted_manifest_the_schema_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The suite-wide check of tests/schema_witness.py would see a disagreement."""
    from tests import schema_witness

    catalog = load_catalog(CATALOG)
    path = tmp_path / "acme.yaml"
    path.write_text(VALID)
    refuse_all = jsonschema.Draft202012Validator({"not": {}})
    monkeypatch.setitem(schema_witness._validators, catalog.digest, refuse_all)
    monkeypatch.setattr(schema_witness, "_seen", set())
    with pytest.raises(pytest.fail.Exception, match="the schema refuses it"):
        load_manifests([path], catalog, {"ACME_STRIPE": "sk_test_x"})
