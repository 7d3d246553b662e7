"""The package list in pyproject.toml is kept by hand (the catalog lives at the top level);
this fails when a new subpackage is missing from it, before a user's `pip install` does."""

from __future__ import annotations

import tomllib

from setuptools import find_packages

from tests.conftest import REPO


def test_every_subpackage_is_packaged() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set(find_packages(str(REPO), include=["reconciler", "reconciler.*"]))
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert config["package-dir"]["reconciler.catalog"] == "catalog"
    assert "reconciler.catalog" in listed
