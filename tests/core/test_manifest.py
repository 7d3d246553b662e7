"""Manifests: the desired state they give, and every problem reported at once with its line."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.catalog import Catalog, load_catalog
from reconciler.core.desired import Desired
from reconciler.core.errors import Diagnostics, InputError
from reconciler.core.manifest import collect_manifest_files, load_manifests
from reconciler.core.secret import Secret

CATALOG_DIR = Path(__file__).parents[1] / "fixtures" / "catalog_min"
ENV = {"ACME_STRIPE_KEY": "sk_test_acme", "ACME_POSTMARK": "pm-token", "ACME_MAPBOX": "pk.x"}

HEAD = """\
apiVersion: reconciler/v1
kind: Organization
metadata:
  name: acme
spec:
  members:
    - user: ops@acme.example
      permissions: [settings.edit]
    - user: viewer@acme.example
      permissions: [settings.view]
  connections:
"""
STRIPE = """\
    - provider: stripe
      owner: ops@acme.example
      credentials:
        api_key: ${ACME_STRIPE_KEY}
"""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CATALOG_DIR)


def write(folder: Path, text: str, name: str = "acme.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def load(
    folder: Path, catalog: Catalog, text: str, env: dict[str, str] | None = None, **kwargs: Any
) -> tuple[Desired, Diagnostics]:
    return load_manifests([write(folder, text)], catalog, ENV if env is None else env, **kwargs)


def problems(diags: Diagnostics) -> list[str]:
    """Errors as 'line: message' (the file is the one written by the test)."""
    return [f"{d.line}: {d.message}" for d in diags.errors]


def test_a_valid_manifest_gives_the_desired_state(tmp_path: Path, catalog: Catalog):
    desired, diags = load(
        tmp_path,
        catalog,
        HEAD
        + STRIPE
        + """\
      resources:
        webhook_endpoints:
          - url: https://acme.example/hooks/stripe
            events: [invoice.paid, customer.subscription.deleted]
    - provider: mapbox
      owner: ops@acme.example
      active: false
      adopt: true
      deletionPolicy: orphan
      preventDestroy: true
      credentials: {api_key: "${ACME_MAPBOX}"}
  allowEmpty: true
""",
    )
    assert diags.items == []
    org = desired.organizations["acme"]
    assert org.allow_empty is True
    assert org.members == {
        "ops@acme.example": frozenset({"settings.edit"}),
        "viewer@acme.example": frozenset({"settings.view"}),
    }
    assert org.line == 1 and org.file.endswith("acme.yaml")
    stripe, mapbox = org.connections
    assert stripe.address == "acme/stripe" and stripe.owner == "ops@acme.example"
    assert stripe.credentials == {"api_key": Secret("sk_test_acme")}
    assert stripe.credentials["api_key"].source == "ACME_STRIPE_KEY"
    assert stripe.credential_vars == {"api_key": "ACME_STRIPE_KEY"}
    assert stripe.line == 12 and stripe.active is True and stripe.deletion_policy == "delete"
    (hook,) = stripe.resources
    assert hook.kind == "webhook_endpoints" and hook.identity == "https://acme.example/hooks/stripe"
    assert hook.spec == {
        "events": ["invoice.paid", "customer.subscription.deleted"],
        "url": "https://acme.example/hooks/stripe",
    }
    assert (mapbox.active, mapbox.adopt, mapbox.deletion_policy, mapbox.prevent_destroy) == (
        False,
        True,
        "orphan",
        True,
    )
    assert desired.git_commit is None


def test_multi_document_files_and_folders(tmp_path: Path, catalog: Catalog):
    other = HEAD.replace("name: acme", "name: globex") + STRIPE.replace("ACME", "GLOBEX")
    write(tmp_path, HEAD + STRIPE + "---\n" + other, "a.yaml")
    write(tmp_path, HEAD.replace("name: acme", "name: initech") + "    []\n", "b.yml")
    write(tmp_path, "not: read\n", "notes.txt")
    env = {**ENV, "GLOBEX_STRIPE_KEY": "sk_globex"}
    desired, diags = load_manifests([tmp_path], catalog, env)
    assert diags.errors == []
    assert sorted(desired.organizations) == ["acme", "globex", "initech"]
    assert desired.organizations["globex"].line == 17
    assert desired.organizations["initech"].connections == ()


def test_collect_manifest_files(tmp_path: Path):
    b = write(tmp_path, "", "b.yaml")
    a = write(tmp_path, "", "a.yml")
    write(tmp_path, "", ".hidden.yaml")
    write(tmp_path, "", "readme.md")
    assert collect_manifest_files([tmp_path, b]) == [a, b]
    with pytest.raises(InputError, match="no such file or folder"):
        collect_manifest_files([tmp_path / "missing"])
    diags = Diagnostics()
    assert collect_manifest_files([tmp_path / "missing", b], diags) == [b]
    assert [d.message for d in diags.errors] == ["no such file or folder; check the manifest path"]


def test_missing_path_is_a_diagnostic(tmp_path: Path, catalog: Catalog):
    _, diags = load_manifests([tmp_path / "nope.yaml"], catalog, ENV)
    assert [str(d) for d in diags.errors] == [
        f"{tmp_path / 'nope.yaml'}: no such file or folder; check the manifest path"
    ]


def test_literal_secret_is_refused_without_repeating_it(tmp_path: Path, catalog: Catalog):
    canary = "sk_live_CANARY_51H8xyz"
    _, diags = load(tmp_path, catalog, HEAD + STRIPE.replace("${ACME_STRIPE_KEY}", canary))
    assert problems(diags) == [
        "15: credentials.api_key of stripe is a literal value; plaintext secrets do not go into "
        "git: use a ${VAR} reference and set the variable in the environment"
    ]
    assert canary not in str(InputError(diags))


@pytest.mark.parametrize("value", ["prefix-${ACME_STRIPE_KEY}", "${A}${B}", "12345", "'${'", "[x]"])
def test_credentials_are_whole_references(tmp_path: Path, catalog: Catalog, value: str):
    _, diags = load(tmp_path, catalog, HEAD + STRIPE.replace("${ACME_STRIPE_KEY}", value))
    (problem,) = problems(diags)
    assert problem.startswith("15: credentials.api_key of stripe is ")


@pytest.mark.parametrize("name", ["acme_key", "1KEY", "", "A-B", "A B"])
def test_variable_names_are_upper_case(tmp_path: Path, catalog: Catalog, name: str):
    _, diags = load(tmp_path, catalog, HEAD + STRIPE.replace("ACME_STRIPE_KEY", name))
    assert problems(diags) == [
        "15: credentials.api_key of stripe refers to an invalid variable name; names are "
        "upper-case letters, digits and '_', starting with a letter (e.g. ACME_API_KEY)"
    ]


def test_reconciler_variables_cannot_be_sent_to_a_provider(tmp_path: Path, catalog: Catalog):
    env = {**ENV, "RECONCILER_ENCRYPTION_KEYS": "k1:master"}
    _, diags = load(
        tmp_path,
        catalog,
        HEAD + STRIPE.replace("ACME_STRIPE_KEY", "RECONCILER_ENCRYPTION_KEYS"),
        env,
    )
    (problem,) = problems(diags)
    assert problem.startswith(
        "15: credentials.api_key of stripe refers to "
        "RECONCILER_ENCRYPTION_KEYS; variables starting with RECONCILER_"
    )
    assert "master" not in problem


def test_unset_and_empty_variables_name_the_variable(tmp_path: Path, catalog: Catalog):
    text = (
        HEAD
        + STRIPE
        + STRIPE.replace("stripe", "postmark").replace("ACME_STRIPE_KEY", "ACME_POSTMARK")
    )
    _, diags = load(tmp_path, catalog, text, {"ACME_POSTMARK": ""})
    assert problems(diags) == [
        "15: environment variable ACME_STRIPE_KEY is not set (credentials.api_key of "
        "acme/stripe); set it before running",
        "19: environment variable ACME_POSTMARK is empty (credentials.api_key of "
        "acme/postmark); set it to the credential",
    ]
    desired, diags = load(tmp_path, catalog, text, {}, resolve_secrets=False)
    assert diags.items == []
    (stripe, _) = desired.organizations["acme"].connections
    assert stripe.credentials == {} and stripe.credential_vars == {"api_key": "ACME_STRIPE_KEY"}


def test_interpolation_runs_once(tmp_path: Path, catalog: Catalog):
    env = {"ACME_STRIPE_KEY": "${ACME_OTHER}$x$$", "ACME_OTHER": "no"}
    desired, diags = load(tmp_path, catalog, HEAD + STRIPE, env)
    assert diags.items == []
    conn = desired.organizations["acme"].connections[0]
    assert conn.credentials["api_key"].reveal() == "${ACME_OTHER}$x$$"


def test_unknown_and_missing_credential_fields(tmp_path: Path, catalog: Catalog):
    text = HEAD + STRIPE.replace("api_key:", "secret_key:")
    _, diags = load(tmp_path, catalog, text)
    assert problems(diags) == [
        "15: unknown credential field 'secret_key' for stripe; it takes: api_key",
        "14: credentials of stripe are missing the required field 'api_key' (Secret key); add "
        "api_key: ${VAR}",
    ]
    optional = HEAD + STRIPE.replace("stripe", "anthropic")  # admin_key is optional
    assert load(tmp_path, catalog, optional)[1].errors == []


def test_unknown_fields_anywhere_are_named(tmp_path: Path, catalog: Catalog):
    text = (
        HEAD.replace("kind: Organization", "kind: Organization\nstatus: {}")
        .replace("name: acme", "name: acme\n  labels: {}")
        .replace("permissions: [settings.edit]", "permissions: [settings.edit]\n      role: x")
        + STRIPE
        + "      region: eu\n"
        + "      resources:\n        webhook_endpoints:\n"
        + "          - {url: 'https://a.example/h', events: ['*'], secret: x}\n"
    )
    _, diags = load(tmp_path, catalog, text)
    assert problems(diags) == [
        "3: unknown field 'status' in a manifest document; the allowed fields are: apiVersion, "
        "kind, metadata, spec",
        "6: unknown field 'labels' in metadata; the allowed fields are: name",
        "11: unknown field 'role' in spec.members[0]; the allowed fields are: user, permissions",
        "19: unknown field 'region' in spec.connections[0]; the allowed fields are: provider, "
        "owner, credentials, resources, active, adopt, deletionPolicy, preventDestroy",
        "22: unknown field 'secret' in webhook_endpoints[0] of stripe; the allowed fields are: "
        "url, events, description",
    ]


def test_header_fields(tmp_path: Path, catalog: Catalog):
    text = """\
        apiVersion: reconciler/v2
        kind: Team
        metadata: {name: Acme_Corp}
        spec: {allowEmpty: "yes"}
        """
    _, diags = load(tmp_path, catalog, text)
    assert problems(diags) == [
        "1: apiVersion must be reconciler/v1",
        "2: kind must be Organization",
        "3: metadata.name must be an organization slug: lower-case letters, digits and '-', "
        "starting with a letter or digit",
        "4: spec.allowEmpty must be true or false",
    ]
    _, diags = load(tmp_path, catalog, "- just a list\n")
    assert problems(diags)[0].startswith("1: a manifest document must be a mapping")
    _, diags = load(tmp_path, catalog, "kind: Organization\n")
    assert problems(diags) == [
        "1: a manifest document is missing the required field 'apiVersion'",
        "1: a manifest document is missing the required field 'metadata'",
        "1: a manifest document is missing the required field 'spec'",
    ]


def test_same_organization_twice_names_both_places(tmp_path: Path, catalog: Catalog):
    first = write(tmp_path, HEAD + STRIPE, "a.yaml")
    write(tmp_path, "---\n" + HEAD + "    []\n", "b.yaml")
    desired, diags = load_manifests([tmp_path], catalog, ENV)
    assert [str(d) for d in diags.errors] == [
        f"{tmp_path / 'b.yaml'}:5: organization acme is already defined at {first}:1; each "
        "organization has one manifest document"
    ]
    assert len(desired.organizations["acme"].connections) == 1


def test_same_provider_twice(tmp_path: Path, catalog: Catalog):
    _, diags = load(tmp_path, catalog, HEAD + STRIPE + STRIPE)
    assert problems(diags) == [
        "16: provider stripe is listed twice for acme (first at line 12); an organization "
        "connects a provider once"
    ]


def test_owner_must_hold_settings_edit(tmp_path: Path, catalog: Catalog):
    text = (
        HEAD
        + STRIPE.replace("ops@", "viewer@")
        + STRIPE.replace("stripe", "postmark")
        .replace("ops@", "stranger@")
        .replace("ACME_STRIPE_KEY", "ACME_POSTMARK")
    )
    _, diags = load(tmp_path, catalog, text)
    assert problems(diags) == [
        "13: owner viewer@acme.example does not hold settings.edit in acme; a connection's "
        "owner needs settings.edit",
        "17: owner stranger@acme.example is not a member of acme; add them to spec.members "
        "with settings.edit",
    ]


def test_members(tmp_path: Path, catalog: Catalog):
    text = (
        HEAD.replace("viewer@acme.example", "not-an-email")
        .replace("[settings.view]", "[settings.view, admin]")
        .replace(
            "  connections:\n",
            "    - user: ops@acme.example\n      permissions: []\n  connections:\n",
        )
        + "    []\n"
    )
    _, diags = load(tmp_path, catalog, text)
    assert problems(diags) == [
        "9: spec.members[1].user must be the member's email address",
        "10: spec.members[1].permissions[1] is not a permission; use one of: settings.edit, "
        "settings.view",
        "12: spec.members[2].permissions must be a non-empty list, e.g. [settings.edit]",
        "11: ops@acme.example is listed twice in spec.members (first at line 7); list each "
        "member once",
    ]


def test_unknown_provider_lists_the_known_ones(tmp_path: Path, catalog: Catalog):
    _, diags = load(tmp_path, catalog, HEAD + STRIPE.replace("provider: stripe", "provider: strip"))
    assert problems(diags) == [
        "12: unknown provider 'strip'; the catalog has: anthropic, billing_sync, legacy, mapbox, "
        "postmark, quo, stripe"
    ]


def test_inactive_provider_cannot_be_newly_connected(tmp_path: Path, catalog: Catalog):
    text = HEAD + STRIPE.replace("stripe", "legacy")
    _, diags = load(tmp_path, catalog, text)
    assert problems(diags) == [
        "12: provider legacy is inactive in the catalog and cannot be newly connected; remove it "
        "from acme's manifest"
    ]
    assert load(tmp_path, catalog, text, existing={("acme", "legacy")})[1].errors == []
    assert load(tmp_path, catalog, text, existing={("globex", "legacy")})[1].errors != []


def test_dependencies_must_be_listed_or_connected(tmp_path: Path, catalog: Catalog):
    text = HEAD + STRIPE.replace("stripe", "billing_sync")
    _, diags = load(tmp_path, catalog, text)
    assert problems(diags) == [
        "12: provider billing_sync depends on stripe, postmark, which acme has neither connected "
        "nor in its manifest; add stripe, postmark to spec.connections"
    ]
    _, diags = load(tmp_path, catalog, text + STRIPE, existing={("acme", "postmark")})
    assert diags.errors == []


def test_active_toggle_only_where_the_catalog_has_one(tmp_path: Path, catalog: Catalog):
    text = (
        HEAD
        + STRIPE
        + "      active: false\n"
        + STRIPE.replace("stripe", "mapbox").replace("ACME_STRIPE_KEY", "ACME_MAPBOX")
        + "      active: maybe\n"
    )
    _, diags = load(tmp_path, catalog, text)
    assert problems(diags) == [
        "16: provider stripe has no active toggle; remove 'active'",
        "21: spec.connections[1].active must be true or false",
    ]


def test_connection_switches(tmp_path: Path, catalog: Catalog):
    text = HEAD + STRIPE + "      adopt: 1\n      deletionPolicy: keep\n      preventDestroy: no\n"
    _, diags = load(tmp_path, catalog, text)
    assert problems(diags) == [
        "16: spec.connections[0].adopt must be true or false",
        "17: spec.connections[0].deletionPolicy must be one of: delete, orphan",
    ]


def test_every_problem_of_a_run_is_reported_at_once(tmp_path: Path, catalog: Catalog):
    bad = (
        HEAD
        + STRIPE.replace("${ACME_STRIPE_KEY}", "sk_live_x")
        + """\
    - provider: nope
      owner: ops@acme.example
    - provider: postmark
      owner: viewer@acme.example
      credentials: {api_key: "${ACME_POSTMARK}"}
"""
    )
    write(tmp_path, bad, "a.yaml")
    write(tmp_path, "a: 1\na: 2\n", "b.yaml")
    write(
        tmp_path,
        HEAD.replace("name: acme", "name: globex") + STRIPE.replace("ACME", "GLOBEX"),
        "c.yaml",
    )
    _, diags = load_manifests([tmp_path], catalog, ENV)
    assert [(Path(d.file).name, d.line) for d in diags.errors] == [
        ("a.yaml", 15),
        ("a.yaml", 16),
        ("a.yaml", 19),
        ("b.yaml", 2),
        ("c.yaml", 15),
    ]
    with pytest.raises(InputError) as info:
        diags.raise_if_errors()
    assert "sk_live_x" not in str(info.value)


def test_hostile_yaml_is_reported_with_the_rest(tmp_path: Path, catalog: Catalog):
    pwned = tmp_path / "pwned"
    write(tmp_path, f'a: !!python/object/apply:os.system ["touch {pwned}"]\n', "evil.yaml")
    write(tmp_path, HEAD + STRIPE, "good.yaml")
    desired, diags = load_manifests([tmp_path], catalog, ENV)
    assert not pwned.exists()
    assert [(Path(d.file).name, d.line) for d in diags.errors] == [("evil.yaml", 1)]
    assert "acme" in desired.organizations


def test_empty_documents_are_skipped(tmp_path: Path, catalog: Catalog):
    desired, diags = load(tmp_path, catalog, "---\n# nothing\n---\n" + HEAD + STRIPE + "---\n")
    assert diags.items == [] and list(desired.organizations) == ["acme"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &x 1\nb: *x\n", "an anchor (&name) is not allowed"),
        ("a: " + "[" * 40 + "]" * 40 + "\n", "nested deeper than 32 levels"),
        ("a: '" + "x" * (1024 * 1024) + "'\n", "over the 1048576-byte limit"),
        ("a: !!python/object/new:os.system [echo]\n", "the tag !!python/object/new:os.system"),
        ("x: 1\nx: 2\n", "duplicate key 'x' (first at line 1, again at line 2)"),
    ],
)
def test_hostile_manifests_are_refused_plainly(
    tmp_path: Path, catalog: Catalog, text: str, expected: str
):
    desired, diags = load(tmp_path, catalog, text)
    assert desired.organizations == {}
    assert expected in diags.errors[0].message
