"""The desired state a child checked (``commands.check_ahead``), in one process: it is what
``load_manifests`` answers; secrets cross as their variables' names and are made again from the
command's environment; a check of other files, another catalog, or one that asked about the
database is not used."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.commands import check_ahead
from reconciler.commands.check_ahead import CheckAhead, check_in_child, receive_checked
from reconciler.core.catalog import load_catalog
from reconciler.core.manifest import load_manifests
from reconciler.core.manifest_files import collect_manifest_files, read_manifest_file
from tests.conftest import CANARIES, CATALOG, assert_no_canary
from tests.db import write_fleet

SECRETS = {
    "FLEET_STRIPE_KEY": CANARIES["ACME_STRIPE_SECRET_KEY"],
    "FLEET_POSTMARK_KEY": CANARIES["ACME_POSTMARK_TOKEN"],
}


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)  # the child checks against its own environment
    return collect_manifest_files([write_fleet(tmp_path / "fleet", ["org-a", "org-b"])])


def test_the_checked_state_is_load_manifests_answer(files: list[Path]) -> None:
    check = CheckAhead(None)
    data = check_in_child(files, read_manifest_file, check)
    assert data is not None and data.startswith(check_ahead.TAG)
    assert_no_canary(data, "the checked state")
    checked = receive_checked(data, SECRETS, files, None, True)
    assert checked is not None
    desired, diags = load_manifests(files, load_catalog(None), SECRETS)
    assert checked.desired == desired  # Secret compares by value: made again, the same
    assert checked.diags == diags and checked.valid == ("org-a", "org-b")
    stripe = checked.desired.organizations["org-a"].connection("stripe")
    assert stripe is not None and stripe.credentials["api_key"].source == "FLEET_STRIPE_KEY"


@pytest.mark.parametrize(
    ("catalog_dir", "resolve_secrets", "n_files", "environ"),
    [
        ("elsewhere", True, 2, SECRETS),  # another catalog
        (None, False, 2, SECRETS),  # validate's check (no secrets read), not plan's
        (None, True, 1, SECRETS),  # other files
        (None, True, 2, {}),  # a secret's variable not set here: not the same run
    ],
)
def test_a_check_that_is_not_the_commands_is_not_used(
    files: list[Path],
    catalog_dir: str | None,
    resolve_secrets: bool,
    n_files: int,
    environ: dict[str, str],
) -> None:
    data = check_in_child(files, read_manifest_file, CheckAhead(None))
    assert data is not None
    assert receive_checked(data, environ, files[:n_files], catalog_dir, resolve_secrets) is None


def test_a_check_that_asks_about_the_database_is_left_to_the_command(
    files: list[Path], tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    for source in CATALOG.glob("*.yaml"):
        text = source.read_text()
        if source.name == "postmark.yaml":  # inactive: allowed where already connected
            text = text.replace("active: true", "active: false", 1)
        (catalog / source.name).write_text(text)
    assert check_in_child(files, read_manifest_file, CheckAhead(str(catalog))) is None


@pytest.mark.parametrize(
    ("provider_side", "resources", "worth"),
    [
        (False, True, True),  # --refresh=false: nothing waits on the organizations one by one
        (True, False, True),  # nothing to read at the providers
        (True, True, False),  # reads start as each organization is checked: documents
    ],
)
def test_when_checking_ahead_is_worth_it(provider_side: bool, resources: bool, worth: bool) -> None:
    conn: dict[str, object] = {"provider": "stripe"}
    if resources:
        conn["resources"] = {"webhook_endpoints": [{"url": "https://a.example/hooks"}]}
    documents = [{"spec": {"connections": [{"provider": "postmark"}, conn]}}, "not a mapping"]
    check = CheckAhead(None, provider_side=provider_side)
    assert check_ahead.worth_checking(check, documents) is worth


def test_a_secret_without_its_variables_name_is_not_sent() -> None:
    from reconciler.core.secret import Secret

    with pytest.raises(check_ahead.pickle.PicklingError):
        check_ahead._SecretsByName(check_ahead.io.BytesIO()).dump(Secret("value"))
