"""The command line as a function: ``main(argv)`` returns the exit code a user sees.

0 success, 1 an error the tool explains, 2 ``plan --detailed-exitcode`` with changes (and
click's usage errors), 3 an unexpected error: one line pointing to ``--verbose``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import reconciler.commands.validatecmd as validatecmd
from reconciler.cli import main
from tests.conftest import MANIFESTS, Env


@pytest.fixture
def in_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """``main`` reads the process environment and folder: give it the env's."""
    for k, v in env.vars.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(env.cwd)
    yield env


def test_version_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "reconciler" in capsys.readouterr().out
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_validate_returns_0_and_1(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    assert main(["validate", str(MANIFESTS)]) == 0
    assert capsys.readouterr().out.startswith("Valid: ")
    bad = os.path.join(str(tmp_path), "bad.yaml")
    with open(bad, "w") as f:
        f.write("apiVersion: reconciler/v1\nkind: Organization\nmetadata: {}\n")
    assert main(["validate", bad]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "nothing was written" in err


def test_unexpected_error_has_its_own_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(validatecmd, "load_inputs", broken)
    assert main(["validate", str(MANIFESTS)]) == 3
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "An unexpected error has occurred: ZeroDivisionError. Run with --verbose for details."
    ]


@pytest.mark.databases("sqlite")  # the URL is replaced: one run is enough
def test_database_failure_is_an_explained_error(
    in_env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_DATABASE_URL", "postgresql://postgres@127.0.0.1:9/none")
    assert main(["plan"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: the database failed: OperationalError: ")
    assert "RECONCILER_DATABASE_URL" in err and "unexpected" not in err


def test_detailed_exitcode(in_env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """0 when there is nothing to do, 2 when there are changes, 1 when planning fails; and
    without the flag, changes are still 0."""
    assert main(["plan", "--detailed-exitcode"]) == 2
    assert main(["plan"]) == 0
    assert main(["apply"]) == 0
    capsys.readouterr()
    assert main(["plan", "--detailed-exitcode"]) == 0
    assert "No changes." in capsys.readouterr().out
    (in_env.cwd / "manifests" / "broken.yaml").write_text("kind: [unclosed\n")
    assert main(["plan", "--detailed-exitcode"]) == 1
    assert "broken.yaml" in capsys.readouterr().err


def test_python_m_reconciler_exits_with_the_code(tmp_path: object) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    r = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "no-such-folder"],
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 1, r.stderr
    assert "no-such-folder" in r.stderr
