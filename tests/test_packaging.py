"""What users install is what works: a wheel built from this tree, installed into a fresh
virtual environment, runs `reconciler` from an empty folder with its shipped catalog."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from reconciler.crypto import generate_entry
from tests.conftest import CANARIES, MANIFESTS, REPO
from tests.db import FLEET_SECRETS, write_fleet

pytestmark = pytest.mark.timeout(300)


def test_packages_are_discovered_not_listed() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["packages"] == {"find": {"include": ["reconciler*"]}}, "no hand-kept list"
    assert (REPO / "catalog").resolve() == (REPO / "reconciler" / "catalog").resolve()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a copy of the tree, so the checkout stays clean."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(
        REPO / "reconciler",
        src / "reconciler",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--no-build-isolation", "--wheel-dir", str(out), str(src)),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("reconciler-*.whl")
    return built


def test_the_wheel_carries_the_catalog(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (REPO / "catalog").glob("*.yaml")}
    assert shipped and {f"reconciler/catalog/{n}" for n in shipped} <= names
    assert "reconciler/db/migrations/versions/0001_initial_schema.py" in names
    assert not any(n.startswith(("catalog/", "tests/")) for n in names)


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the wheel; its dependencies are lent from this environment
    (a path entry, not an install), so the test needs no network."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    lent = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(purelib) / "lent-dependencies.pth").write_text("\n".join(sorted(lent)) + "\n")
    return venv


def _run(venv: Path, cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(CANARIES)
    env.update(extra)
    return subprocess.run(
        [str(venv / "bin" / "reconciler"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_installed_reconciler_runs_from_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import reconciler; print(reconciler.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(installed) in where and str(REPO) not in where

    catalog = _run(installed, tmp_path, "catalog")
    assert catalog.returncode == 0, catalog.stdout + catalog.stderr
    for name in ("stripe", "postmark", "google_maps", "quo"):
        assert name in catalog.stdout

    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    validate = _run(installed, tmp_path, "validate", "manifests")
    assert validate.returncode == 0, validate.stdout + validate.stderr

    default = _run(installed, tmp_path, "validate")
    assert default.returncode == 0, default.stdout + default.stderr


def test_installed_reconciler_reads_a_fleet_on_the_second_core(
    installed: Path, tmp_path: Path
) -> None:
    # 450 organizations (280 KB): enough manifests for a child to parse them
    # (commands.parse_ahead), and for plan, to check them (commands.check_ahead)
    write_fleet(tmp_path / "fleet", [f"org-{i:03d}" for i in range(450)])
    validate = _run(installed, tmp_path, "--verbose", "validate", "fleet")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert "450 manifest file(s) parsed by a process beside this one" in validate.stderr

    plan = _run(
        installed,
        tmp_path,
        *("--verbose", "plan", "--refresh=false", "fleet"),
        RECONCILER_ENCRYPTION_KEYS=generate_entry("k1"),
        RECONCILER_DATABASE_URL=f"sqlite:///{tmp_path / 'new.db'}",
        **FLEET_SECRETS,
    )
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "450 manifest file(s) checked by a process beside this one" in plan.stderr
    assert "Plan: 1800 to create, 0 to update, 0 to delete." in plan.stdout
