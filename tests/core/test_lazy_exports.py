"""Packages whose names are imported on first use (``core.lazy_exports``): importing the
package imports none of its heavy modules; asking for a name imports its module and gives
the same object as the module's; an unknown name is an AttributeError."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

CHECK = """
import importlib, json, sys
package, name, home = sys.argv[1:4]
module = importlib.import_module(package)
before = f"{package}.{home}" in sys.modules
value = getattr(module, name)
same = value is getattr(sys.modules[f"{package}.{home}"], name)
kept = name in vars(module)
try:
    getattr(module, "no_such_name")
    unknown = "found"
except AttributeError as e:
    unknown = str(e)
print(json.dumps({"before": before, "same": same, "kept": kept, "unknown": unknown}))
"""


@pytest.mark.parametrize(
    ("package", "name", "home"),
    [
        ("reconciler.apply", "Applier", "runner"),
        ("reconciler.incidents", "deliver", "delivery"),
        ("reconciler.incidents", "NotifySettings", "settings"),
        ("reconciler.health", "run_checks", "runner"),
    ],
)
def test_a_name_is_imported_when_asked_for(package: str, name: str, home: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK, package, name, home],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seen = json.loads(done.stdout)
    assert seen == {
        "before": False,  # importing the package did not import the module
        "same": True,
        "kept": True,  # looked up once, then a plain attribute of the package
        "unknown": f"module {package!r} has no attribute 'no_such_name'",
    }


def test_importing_incidents_for_its_settings_imports_no_sqlalchemy() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from reconciler.incidents import NotifySettings; "
            "print('sqlalchemy' in sys.modules)",
        ],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "False"
