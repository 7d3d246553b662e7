"""A witness for the whole suite: every manifest the validator accepts, in any test, must also
match the JSON Schema of ``reconciler schema`` built from the same catalog.

Installed by ``tests/conftest.py`` before any test module imports the loader. A manifest the
validator accepts but the schema refuses fails the test that loaded it (``pytest.fail`` is not
an ``Exception``, so the CLI's error handler lets it through).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import reconciler.commands.inputs as inputs_module
import reconciler.core.manifest as manifest_module
from reconciler.core.catalog import Catalog
from reconciler.core.manifest_schema import manifest_schema
from reconciler.core.yamlsafe import load_yaml_documents

MAX_FILES = 20  # benchmarks load thousands of files: a sample of small runs is enough
_validators: dict[str, jsonschema.protocols.Validator] = {}
_seen: set[tuple[str, str]] = set()
checked = {"documents": 0}


def _validator(catalog: Catalog) -> Any:
    key = catalog.digest or str(id(catalog))
    if key not in _validators:
        schema = manifest_schema(catalog)
        jsonschema.Draft202012Validator.check_schema(schema)
        _validators[key] = jsonschema.Draft202012Validator(schema)
    return _validators[key]


def _check(paths: Sequence[str | Path], catalog: Catalog) -> None:
    files = manifest_module.collect_manifest_files(paths)
    if len(files) > MAX_FILES:
        return
    validator = _validator(catalog)
    for path in files:
        raw = path.read_bytes()
        key = (catalog.digest or str(id(catalog)), hashlib.sha256(raw).hexdigest())
        if key in _seen:
            continue
        _seen.add(key)
        for doc in load_yaml_documents(raw, str(path)):
            if doc.value is None:
                continue
            errors = sorted(validator.iter_errors(doc.plain()), key=lambda e: list(e.path))
            checked["documents"] += 1
            if errors:
                where = ", ".join(
                    f"{'/'.join(str(p) for p in e.path) or '(top)'}: {e.message[:200]}"
                    for e in errors
                )
                pytest.fail(
                    f"{path}: the validator accepted this manifest but the schema refuses it: "
                    f"{where}",
                    pytrace=False,
                )


def install() -> None:
    original = manifest_module.load_manifests
    if getattr(original, "witnessed", False):
        return

    @functools.wraps(original)
    def load_manifests(paths: Sequence[str | Path], catalog: Catalog, *args: Any, **kw: Any):  # type: ignore[no-untyped-def]
        desired, diags = original(paths, catalog, *args, **kw)
        if not diags.errors:
            _check(paths, catalog)
        return desired, diags

    load_manifests.witnessed = True  # type: ignore[attr-defined]
    manifest_module.load_manifests = load_manifests  # type: ignore[assignment]
    inputs_module.load_manifests = load_manifests  # type: ignore[attr-defined]
