"""Saved plans: ``plan --out FILE`` and ``apply --plan FILE``, through the core's plan codec.

A saved plan holds the changes (with the environment variables of the credentials they
store), the catalog digest, the keyed fingerprints of the secrets it saw (and their
variables), and the state it was computed from (lineage and serial). Apply refuses it as
stale when any of those moved on, before writing anything. The file holds no absolute path: a
catalog given with ``--catalog`` is named relative to the plan file. A plan with errors (a
connection left out: SPEC section 8) is not saved.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from reconciler.commands.inputs import keyring, open_database
from reconciler.commands.run import CredentialKey, Planned
from reconciler.core.catalog import default_catalog_dir, load_catalog
from reconciler.core.errors import InputError, ReconcilerError, StalePlanError
from reconciler.core.planfile import STALE, SavedPlan, read_saved, write_saved
from reconciler.core.secret import Secret
from reconciler.crypto import CredentialAddress, KeyRing

_AGAIN = "run `reconciler plan --out` again"


def _catalog_dir_for(source: str, plan_file: Path) -> str | None:
    """The catalog folder relative to the plan file's folder; None for the shipped one."""
    if Path(source).resolve() == Path(default_catalog_dir()).resolve():
        return None
    return os.path.relpath(Path(source).resolve(), plan_file.resolve().parent)


def save_plan(planned: Planned, path: Path) -> None:
    """Write the plan to ``path``; refused (nothing written) when it has errors."""
    if planned.plan.errors:
        failed = sorted({e.connection for e in planned.plan.errors})
        raise ReconcilerError(
            f"the plan has errors for {', '.join(failed)} (above); it was not saved to {path}. "
            "Fix them, then run `reconciler plan --out` again."
        )
    write_saved(
        SavedPlan(
            plan=planned.plan,
            catalog_digest=planned.catalog.digest,
            fingerprints=planned.fingerprints,
            variables=planned.variables,
            database_existed=planned.observed.exists,
            overrides=planned.overrides,
            git_commit=planned.git_commit,
            catalog_dir=_catalog_dir_for(planned.catalog.source, path),
        ),
        path,
    )


def load_saved_plan(path: Path, catalog_dir: str | None, environ: Mapping[str, str]) -> Planned:
    saved = read_saved(path)
    if catalog_dir is None and saved.catalog_dir is not None:
        catalog_dir = str(path.resolve().parent / saved.catalog_dir)
    catalog = load_catalog(catalog_dir)
    if catalog.digest != saved.catalog_digest:
        raise StalePlanError(f"{STALE}: the catalog changed since the plan was made; {_AGAIN}")
    ring = keyring(environ)
    _, observed = open_database(environ)
    plan = saved.plan
    if (observed.lineage, observed.serial) != (plan.lineage, plan.serial) and (
        observed.exists or saved.database_existed
    ):
        raise StalePlanError(
            f"{STALE}: the database changed since the plan was made "
            f"(serial {plan.serial} -> {observed.serial}); {_AGAIN}"
        )
    secrets = _secrets(saved.variables, environ)
    _check_fingerprints(saved, secrets, ring)
    return Planned(
        plan,
        catalog,
        observed,
        ring,
        {k: dict(v) for k, v in saved.fingerprints.items()},
        dict(saved.variables),
        secrets,
        dict(saved.overrides),
        saved.git_commit,
    )


def _secrets(
    variables: Mapping[CredentialKey, str], environ: Mapping[str, str]
) -> dict[str, Secret]:
    missing = sorted({v for v in variables.values() if not environ.get(v)})
    if missing:
        raise InputError(
            "the saved plan needs these environment variables, which are not set: "
            + ", ".join(missing)
        )
    return {v: Secret(environ[v], v) for v in sorted(set(variables.values()))}


def _check_fingerprints(saved: SavedPlan, secrets: Mapping[str, Secret], ring: KeyRing) -> None:
    """Every secret the plan saw must still be the one in the environment."""
    for key, by_id in sorted(saved.fingerprints.items()):
        org, provider, user, field = key
        var = saved.variables.get(key, "")
        secret = secrets.get(var)
        addr = CredentialAddress(org, provider, user, field)
        for kid, fp in by_id.items():
            if (
                secret is None
                or kid not in ring.key_ids
                or ring.fingerprint(secret.reveal(), addr, key_id=kid) != fp
            ):
                raise StalePlanError(
                    f"{STALE}: the secret behind {org}/{provider} {field} "
                    f"(${var}) changed since the plan was made; {_AGAIN}"
                )
