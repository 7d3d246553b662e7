"""``reconciler import --out DIR``: write manifests that reproduce the database.

Reads the database once (no write, no encryption key, no secret) and writes one manifest per
organization plus an example env file. No file is overwritten without ``force``: every file is
checked before the first one is written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from reconciler.commands.inputs import Selection, open_database
from reconciler.core.catalog import load_catalog
from reconciler.core.errors import Diagnostics, InputError
from reconciler.core.manifest import load_manifests
from reconciler.core.manifest_import import (
    ENV_EXAMPLE,
    env_example,
    import_organizations,
    importable_organizations,
)
from reconciler.db.engine import database_url


@dataclass
class ImportResult:
    written: list[Path]
    organizations: int
    connections: int
    adopted: int
    problems: Diagnostics


def run_import(
    catalog_dir: str | None,
    out: Path,
    environ: Mapping[str, str],
    selection: Selection,
    *,
    force: bool,
) -> ImportResult:
    catalog = load_catalog(catalog_dir)
    url = database_url(environ)
    _, observed = open_database(environ)
    if not observed.exists:
        raise InputError(
            f"the database {_describe(url)} has no reconciler schema: nothing to import"
        )
    orgs = [o for o in importable_organizations(observed) if selection.admits(o)]
    imported = import_organizations(catalog, observed, orgs, source=_describe(url))
    files = {out / f"{o.name}.yaml": o.text for o in imported}
    if imported:
        files[out / ENV_EXAMPLE] = env_example(imported)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; --out names a folder")
    existing = sorted(p for p in files if p.exists())
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise InputError(
            f"{names} already exist{'s' if len(existing) == 1 else ''}; nothing was written. "
            "Use --force to overwrite, or choose another --out folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    manifests = [p for p in files if p.suffix == ".yaml"]
    _, problems = (
        load_manifests(
            manifests,
            catalog,
            environ,
            existing=observed.connected_pairs() | set(observed.instances),
            resolve_secrets=False,
        )
        if manifests
        else (None, Diagnostics())
    )
    return ImportResult(
        written=list(files),
        organizations=len(imported),
        connections=sum(o.connections for o in imported),
        adopted=sum(o.adopted for o in imported),
        problems=problems,
    )


def _describe(url: str) -> str:
    """The database's URL without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the database"


def selection_of(include: Sequence[str], exclude: Sequence[str]) -> Selection:
    return Selection(include=tuple(include), exclude=tuple(exclude))
