"""plan and apply, as functions returning what the CLI prints and its exit code."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from reconciler.commands.fingerprints import fingerprints_for
from reconciler.commands.inputs import (
    Inputs,
    Selection,
    keyring,
    load_inputs,
    open_database,
    policy_from_env,
)
from reconciler.commands.provider_side import Prefetch, with_provider_side
from reconciler.core.catalog import Catalog, load_catalog
from reconciler.core.collection import collection_paused
from reconciler.core.desired import Desired
from reconciler.core.endpoints import base_url_for
from reconciler.core.manifest_files import collect_manifest_files
from reconciler.core.plan import Plan, plan
from reconciler.core.secret import Secret
from reconciler.core.state import Observed
from reconciler.crypto import KeyRing
from reconciler.db.engine import database_url, ensure_schema, make_engine
from reconciler.db.observe import observe

if TYPE_CHECKING:  # apply pulls in the HTTP stack, which plan never needs
    from reconciler.apply import ApplyReport
    from reconciler.apply.early import EarlyChecks
    from reconciler.commands.parse_ahead import Ahead
    from reconciler.health import CheckResult

log = logging.getLogger("reconciler.plan")


CredentialKey = tuple[str, str, str, str]  # organization, provider, user, field


@dataclass
class Planned:
    """A plan and what apply needs beside it: the catalog, the state it was made from, the
    secrets its changes name (by environment variable) and the keyring. ``inputs`` (the
    manifests) is there only when the plan was just made, to plan again; apply never reads it.
    """

    plan: Plan
    catalog: Catalog
    observed: Observed
    keyring: KeyRing
    fingerprints: dict[CredentialKey, dict[str, str]]
    variables: dict[CredentialKey, str]  # the environment variable of each fingerprinted secret
    secrets: dict[str, Secret]  # environment variable -> its value
    overrides: dict[str, str]
    git_commit: str | None = None
    inputs: Inputs | None = None
    selection: Selection = field(default_factory=Selection)
    # providers the plan's reads found down (their breaker opened): apply sends them no check
    down: frozenset[str] = frozenset()
    # checks apply sent while the plan read the provider side, by address (``apply.early``)
    checked: Mapping[str, CheckResult] = field(default_factory=dict)


def named_secrets(desired: Desired) -> tuple[dict[CredentialKey, str], dict[str, Secret]]:
    """Each resolved credential's environment variable, and each variable's secret."""
    variables: dict[CredentialKey, str] = {}
    secrets: dict[str, Secret] = {}
    for org in desired.organizations.values():
        for conn in org.connections:
            for fname, secret in conn.credentials.items():
                var = conn.credential_vars.get(fname, secret.source)
                variables[(org.name, conn.provider, conn.owner, fname)] = var
                secrets[var] = secret
    return variables, secrets


def make_plan(
    catalog_dir: str | None,
    paths: Sequence[str],
    environ: Mapping[str, str],
    selection: Selection,
    *,
    refresh: bool = True,
    parallelism: int = 10,
    early_checks: bool = False,
    on_changes: Callable[[Plan], None] | None = None,
    ahead: Ahead | None = None,
) -> Planned:
    """The plan of the manifests against the database and, with ``refresh``, the providers
    (GET only; SPEC section 8). ``early_checks`` (apply): the new credentials are checked
    while the provider side is read (``reconciler.apply.early``). ``on_changes``: called with
    the plan of the database side as soon as it is known, before the provider side is.
    ``ahead``: a child parsing (and checking) the manifests already (``commands.parse_ahead``)."""
    # a mistyped path is named before anything is asked of the environment (keys, secrets)
    files = collect_manifest_files(list(paths) or ["manifests"])
    ring = keyring(environ)
    down: set[str] = set()
    prefetch = None
    try:
        with collection_paused(freeze=True):
            _, observed = open_database(environ)
            catalog = load_catalog(catalog_dir)
            if refresh:  # each organization's provider side is read as soon as it is parsed
                prefetch = Prefetch(
                    catalog,
                    observed,
                    environ=environ,
                    parallelism=parallelism,
                    admits=selection.admits,
                    providers=selection.provider_filter,
                )
            inputs = load_inputs(
                catalog_dir,
                paths,
                environ,
                existing=observed,
                selection=selection,
                files=files,
                catalog=catalog,
                on_organization=prefetch.organization if prefetch is not None else None,
                ahead=ahead,
            )
            between = prefetch.pump if prefetch is not None else None
            fps = fingerprints_for(ring, inputs.desired, observed, between=between)
            p, diags = plan(
                inputs.catalog,
                inputs.desired,
                observed,
                fps,
                providers=selection.provider_filter,
                between=between,
            )
            if on_changes is not None and not diags.errors:
                on_changes(p)
            if not refresh:  # the database only: no client, no threads
                p = _provider_side(
                    inputs, observed, p, ring, environ, selection, False, parallelism, down
                )
        variables, secrets = named_secrets(inputs.desired)
        early = None
        if refresh and early_checks and not diags.errors:
            early = _early_checks(inputs, p, secrets, environ, parallelism)
        if refresh:
            p = _provider_side(
                inputs,
                observed,
                p,
                ring,
                environ,
                selection,
                True,
                parallelism,
                down,
                early,
                prefetch,
            )
    finally:
        if prefetch is not None:
            prefetch.close()
    diags.raise_if_errors()
    log.debug(
        "planned %d change(s) for %d organization(s) from %d manifest file(s); state serial %d",
        len(p.changes),
        len(p.organizations),
        len(inputs.files),
        observed.serial,
    )
    overrides = {}
    for name in sorted(
        {c.provider for o in inputs.desired.organizations.values() for c in o.connections}
    ):
        provider = inputs.catalog.providers[name]
        url, overridden = base_url_for(provider, environ)
        if overridden:
            overrides[name] = url
    return Planned(
        p,
        inputs.catalog,
        observed,
        ring,
        fps,
        variables,
        secrets,
        overrides,
        inputs.desired.git_commit,
        inputs,
        selection,
        frozenset(down),
        early.results if early is not None else {},
    )


def _early_checks(
    inputs: Inputs, p: Plan, secrets: Mapping[str, Secret], environ: Mapping[str, str], n: int
) -> EarlyChecks | None:
    """None when no change is checked: the HTTP stack is not imported."""
    from reconciler.apply.checks import needs_check

    if not any(needs_check(c) for c in p.changes):
        return None
    from reconciler.apply.early import EarlyChecks, early_requests  # the HTTP stack

    requests = early_requests(p, inputs.catalog, secrets, environ)
    return EarlyChecks(requests, parallelism=n, policy=policy_from_env(environ), environ=environ)


def _provider_side(
    inputs: Inputs,
    observed: Observed,
    p: Plan,
    ring: KeyRing,
    environ: Mapping[str, str],
    selection: Selection,
    refresh: bool,
    parallelism: int,
    down: set[str],
    early: EarlyChecks | None = None,
    prefetch: Prefetch | None = None,
) -> Plan:
    return with_provider_side(
        inputs.catalog,
        inputs.desired,
        observed,
        p,
        ring=ring,
        environ=environ,
        refresh=refresh,
        parallelism=parallelism,
        providers=selection.provider_filter,
        down=down,
        during_reads=early.running if early is not None else None,
        prefetch=prefetch,
    )


def run_apply(
    planned: Planned,
    environ: Mapping[str, str],
    *,
    actor: str,
    parallelism: int,
    on_check: Callable[[Any], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    method: str = "apply",
    lock_timeout: float = 30.0,
    write_turn: Callable[[], AbstractContextManager[object]] | None = None,
    processes: int = 1,
) -> ApplyReport:
    """Carry out ``planned``; the providers its reads found down get no check (each is
    reported unreachable, as the circuit breaker reports it). ``processes``: of the run
    (``--workers``), this one among them."""
    from reconciler.commands.frozen_imports import frozen_imports

    with frozen_imports():
        from reconciler.apply import Applier, ApplyOptions

    engine = make_engine(database_url(environ))
    ensure_schema(engine)
    options = ApplyOptions(
        actor=actor,
        method=method,
        git_commit=planned.git_commit,
        parallelism=parallelism,
        environ=environ,
        on_check=on_check,
        on_start=on_start,
        lock_timeout=lock_timeout,
        policy=policy_from_env(environ),
        write_turn=write_turn,
        down=planned.down,
        checked=planned.checked,
        processes=processes,
    )
    applier = Applier(engine, planned.catalog, planned.keyring, options)
    return applier.apply(planned.plan, planned.secrets, planned.observed)


def replan_after_schema(
    planned: Planned, environ: Mapping[str, str], *, parallelism: int = 10
) -> Planned:
    """Observe again once the schema exists (the first apply on a new SQLite file). Still
    empty, as it is unless another command wrote in between, it is the state the plan was
    made from: the plan stands (its provider side is not read a second time)."""
    assert planned.inputs is not None, "only a plan just made is made again"
    engine = make_engine(database_url(environ))
    observed = observe(engine)
    if not observed.instances and not observed.pending:
        p = replace(planned.plan, lineage=observed.lineage, serial=observed.serial)
        return replace(planned, plan=p, observed=observed)
    desired = planned.inputs.desired
    fps = fingerprints_for(planned.keyring, desired, observed)
    p, diags = plan(
        planned.catalog, desired, observed, fps, providers=planned.selection.provider_filter
    )
    down = set(planned.down)
    p = with_provider_side(
        planned.catalog,
        desired,
        observed,
        p,
        ring=planned.keyring,
        environ=environ,
        parallelism=parallelism,
        providers=planned.selection.provider_filter,
        down=down,
    )
    diags.raise_if_errors()
    # the checks sent during the first plan were of that plan: apply sends this one's
    return replace(
        planned, plan=p, observed=observed, fingerprints=fps, down=frozenset(down), checked={}
    )
