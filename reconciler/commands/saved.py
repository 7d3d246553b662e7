"""Saved plans: ``plan --out FILE`` and ``apply --plan FILE``, through the core's plan codec.

A saved plan holds the changes (with the environment variables of the credentials they
store), the catalog digest, the keyed fingerprints of the secrets it saw (and their
variables), and the state it was computed from (lineage and serial). Apply refuses it as
stale when any of those moved on, or when the provider side of a connection it changes there
no longer is what its steps assumed (read again, GET only: ``reconciler.core.remote_stale``),
before writing anything. The file holds no absolute path: a
catalog given with ``--catalog`` is named relative to the plan file. A plan with errors (a
connection left out: SPEC section 8) is not saved.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.orm import Session

from reconciler.commands.inputs import keyring, open_database, policy_from_env
from reconciler.commands.run import CredentialKey, Planned
from reconciler.core.catalog import Catalog, default_catalog_dir, load_catalog
from reconciler.core.changes import Kind, Plan
from reconciler.core.errors import InputError, ReconcilerError, StalePlanError
from reconciler.core.planfile import STALE, SavedPlan, write_saved
from reconciler.core.planfile_read import read_saved
from reconciler.core.remote import RemoteObject, is_signing_secret_field
from reconciler.core.remote_stale import Key, moved_at_provider, provider_steps, step_scopes
from reconciler.core.secret import Secret
from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.credentials import decrypt, managed_credentials
from reconciler.db.engine import database_url, make_engine

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
    if provider_steps(plan):
        _check_provider_side(catalog, plan, ring, secrets, environ, observed.exists)
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


def _check_provider_side(
    catalog: Catalog,
    plan: Plan,
    ring: KeyRing,
    secrets: Mapping[str, Secret],
    environ: Mapping[str, str],
    database_exists: bool,
) -> None:
    """Read again (GET only) the provider side of the connections whose changes have provider
    steps; refuse the plan as stale when what a step assumed moved there (deleted, changed,
    or an object with a created resource's identity appeared). A provider that cannot be read
    refuses it too: nothing is written on an unchecked assumption."""
    from reconciler.providers.refresh import RefreshRequest, refresh  # the HTTP stack

    steps = provider_steps(plan)
    creds = _credentials(plan, list(steps), ring, secrets, environ, database_exists)
    scopes = step_scopes(plan)
    requests = [
        RefreshRequest(
            key,
            catalog.providers[key[1]],
            creds.get(key, {}),
            tuple(sorted(kinds)),
            scopes.get(key, {}),
        )
        for key, kinds in sorted(steps.items())
    ]
    held: dict[Key, dict[str, tuple[RemoteObject, ...]]] = {}
    for r in refresh(requests, policy=policy_from_env(environ), environ=environ):
        org, provider = r.key
        if r.error is not None:
            display = catalog.providers[provider].display_name
            raise ReconcilerError(
                f"{org}/{provider}: {display} could not be read to check the saved plan "
                f"({r.error}); nothing was written. Try again, or {_AGAIN}"
            )
        held[r.key] = dict(r.objects)
    moved = moved_at_provider(catalog, plan, held)
    if moved:
        raise StalePlanError(
            f"{STALE}: the provider side changed since the plan was made ("
            + "; ".join(moved)
            + f"); {_AGAIN}"
        )


def _credentials(
    plan: Plan,
    keys: list[Key],
    ring: KeyRing,
    secrets: Mapping[str, Secret],
    environ: Mapping[str, str],
    database_exists: bool,
) -> dict[Key, dict[str, Secret]]:
    """The key apply acts with for each connection: the stored credentials, with the plan's
    new values over them (decrypted here, never logged)."""
    out: dict[Key, dict[str, Secret]] = {key: {} for key in keys}
    if database_exists:
        # the command's one engine for this URL (make_engine), closed when the command ends
        with Session(make_engine(database_url(environ))) as s:
            for org, provider in keys:
                rows = [
                    c
                    for c in managed_credentials(s, org, provider)
                    if not is_signing_secret_field(c.field)
                ]
                out[(org, provider)].update(decrypt(ring, rows))
    for c in plan.changes:
        key = (c.organization, c.provider)
        if c.kind is Kind.CONNECTION and c.connection is not None and key in out:
            for ref in c.connection.credentials:
                if ref.variable and ref.variable in secrets:
                    out[key][ref.field] = secrets[ref.variable]
    return out
