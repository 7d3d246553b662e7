"""``reconciler validate``: the catalog and manifests, without database or network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.commands.inputs import load_inputs, unset_variables
from reconciler.commands.parse_ahead import Ahead


@dataclass(frozen=True)
class Validation:
    warnings: tuple[str, ...]
    summary: str


def validate(
    catalog_dir: str | None,
    paths: Sequence[str],
    environ: Mapping[str, str],
    *,
    require_env: bool,
    ahead: Ahead | None = None,
) -> Validation:
    """Raises InputError listing every problem; a variable the manifests name but the
    environment lacks is a warning unless ``require_env``. ``ahead``: a child parsing the
    manifests already (``commands.parse_ahead``)."""
    inputs = load_inputs(catalog_dir, paths, environ, resolve_secrets=require_env, ahead=ahead)
    warnings = tuple(
        f"Warning: {where}: environment variable {var} is not set; plan and apply will need it."
        for var, where in unset_variables(inputs.desired, environ)
    )
    n_orgs = len(inputs.desired.organizations)
    n_conn = sum(len(o.connections) for o in inputs.desired.organizations.values())
    return Validation(
        warnings,
        f"Valid: {len(inputs.files)} manifest file(s), {n_orgs} organization(s), "
        f"{n_conn} connection(s), {len(inputs.catalog.providers)} provider(s) in the catalog.",
    )
