"""The pre-commit hook `reconciler-validate`, run the way users run it: `pre-commit try-repo`.

pre-commit installs this repository into a virtualenv of its own (pip, from PyPI), which takes
about 40 s the first time; both runs below share that installation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

LITERAL = "sk_live_CANARYprecommit-4b1e"


def git(cwd: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


def hook_repository(into: Path) -> Path:
    """This working tree's package and hook definition, committed in a repository of their own
    (try-repo then installs exactly the code under test, once)."""
    into.mkdir()
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(REPO / name, into / name)
    shutil.copytree(
        REPO / "reconciler", into / "reconciler", ignore=shutil.ignore_patterns("__pycache__")
    )
    git(into, "init", "-q")
    git(into, "add", ".")
    git(into, "commit", "-qm", "hook under test")
    return into


def test_the_hook_definition() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    (hook,) = hooks
    assert hook["id"] == "reconciler-validate"
    assert hook["entry"] == "reconciler validate"


@pytest.mark.timeout(600)
def test_try_repo_passes_a_valid_manifest_and_fails_a_literal_secret(tmp_path: Path) -> None:
    hooks = hook_repository(tmp_path / "hooks")
    work = tmp_path / "manifests-repo"
    (work / "manifests").mkdir(parents=True)
    shutil.copy(REPO / "manifests" / "acme.yaml", work / "manifests" / "acme.yaml")
    git(work, "init", "-q")
    git(work, "add", ".")
    git(work, "commit", "-qm", "acme")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RECONCILER_") and not k.endswith("_KEY") and "TOKEN" not in k
    }
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")

    def try_repo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pre_commit",
                "try-repo",
                str(hooks),
                "reconciler-validate",
                "--ref",
                "HEAD",
                "--all-files",
                "--verbose",
            ],
            cwd=work,
            capture_output=True,
            text=True,
            env=env,
            timeout=540,
        )

    # no secret in the environment: the unset variables are warnings, the hook passes
    r = try_repo()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Passed" in r.stdout
    assert "ACME_STRIPE_SECRET_KEY is not set" in r.stdout

    text = (work / "manifests" / "acme.yaml").read_text()
    (work / "manifests" / "acme.yaml").write_text(
        text.replace("${ACME_STRIPE_SECRET_KEY}", LITERAL)
    )
    git(work, "add", ".")
    r = try_repo()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Failed" in r.stdout
    assert "credentials.api_key of stripe is a literal value" in r.stdout
    assert LITERAL not in r.stdout + r.stderr
