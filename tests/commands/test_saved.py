"""Saved plans as files a pipeline moves around: no absolute path, the catalog found again
relative to the file, and the secrets read from the variables the file names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import select

from reconciler.db.schema import AuditEntry
from tests.conftest import CATALOG, Env, assert_no_canary


def test_a_plan_made_with_a_catalog_folder_applies_from_another_folder(
    env: Env, tmp_path: Path
) -> None:
    catalog = tmp_path / "repo" / "catalog"
    shutil.copytree(CATALOG, catalog, symlinks=False)
    plans = tmp_path / "repo" / "plans"
    plans.mkdir()
    plan_file = plans / "plan.json"
    r = env.run("plan", "--catalog", str(catalog), "--out", str(plan_file))
    assert r.exit_code == 0, r.output
    text = plan_file.read_text()
    assert str(tmp_path) not in text, "a saved plan holds no absolute path"
    assert json.loads(text)["saved"]["catalog_dir"] == "../catalog"
    assert_no_canary(text, "plan file")

    # the file moves (with its catalog) to another machine's folder
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "repo", moved)
    shutil.rmtree(tmp_path / "repo")
    r = env.run("apply", "--plan", str(moved / "plans" / "plan.json"))
    assert r.exit_code == 0, r.output
    assert "acme/stripe: created:" in r.output
    with env.session() as s:
        methods = set(s.scalars(select(AuditEntry.method)))
    assert methods == {"apply --plan"}


def test_a_plan_made_with_the_shipped_catalog_names_none(env: Env, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    assert env.run("plan", "--out", str(plan_file)).exit_code == 0
    saved = json.loads(plan_file.read_text())["saved"]
    assert saved["catalog_dir"] is None
    assert saved["variables"]["acme|stripe|ops@acme.example|api_key"] == "ACME_STRIPE_SECRET_KEY"


def test_a_saved_plan_needs_the_variables_it_names(env: Env, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    assert env.run("plan", "--out", str(plan_file)).exit_code == 0
    r = env.run("apply", "--plan", str(plan_file), ACME_QUO_KEY="")
    assert r.exit_code == 1
    assert "needs these environment variables, which are not set: ACME_QUO_KEY" in r.output


def test_an_old_plan_file_is_refused_with_the_version_in_the_message(
    env: Env, tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    assert env.run("plan", "--out", str(plan_file)).exit_code == 0
    doc = json.loads(plan_file.read_text())
    doc["format_version"] = "1.0"
    plan_file.write_text(json.dumps(doc))
    r = env.run("apply", "--plan", str(plan_file))
    assert r.exit_code == 1
    assert "Saved plan is stale: it has format version 1.0, this reconciler writes 1.1" in r.output
