"""A connection's ``credentials:``: whole ``${VAR}`` references, resolved from the environment.

Manifests live in git, so a value written in one is refused, and the refusal never repeats it.
Variables named ``RECONCILER_*`` are the tool's own settings (encryption keys, database URL):
a manifest must not be able to send them to a provider. Interpolation happens once: the
variable's value is used exactly as it is, even when it contains ``$`` or ``${...}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.core.catalog import Provider
from reconciler.core.manifest_source import SourceDocument
from reconciler.core.secret import Secret
from reconciler.core.yamlsafe import Loc

KEEP = "keep"  # credentials: keep (SPEC section 9): the stored credentials stay
REFERENCE = re.compile(r"^\$\{([^{}]*)\}$")
VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]*$")
RESERVED_PREFIX = "RECONCILER_"


@dataclass
class ResolvedCredentials:
    values: dict[str, Secret] = field(default_factory=dict)  # field -> secret (when resolved)
    variables: dict[str, str] = field(default_factory=dict)  # field -> environment variable
    keep: bool = False  # ``credentials: keep``: no variables; the stored credentials stay


def read_credentials(
    src: SourceDocument,
    path: Loc,
    value: Any,
    *,
    provider_name: str,
    provider: Provider | None,
    address: str,
    environ: Mapping[str, str],
    resolve: bool,
) -> ResolvedCredentials:
    """Check every credential reference; with ``resolve``, read the variables too.

    ``credentials: keep`` reads nothing: the connection keeps its stored credentials.

    ``provider`` is None when the provider is unknown: the references are still checked, the
    field names cannot be.
    """
    out = ResolvedCredentials()
    if value == KEEP:
        return ResolvedCredentials(keep=True)
    if value is None:
        value = {}
    if not isinstance(value, dict):
        src.error(
            path,
            f"credentials of {provider_name} must be a mapping of field to "
            "${VAR} reference, e.g. api_key: ${ACME_API_KEY}, or keep (the stored "
            "credentials stay)",
        )
        return out
    known = {f.name: f for f in provider.credentials} if provider else {}
    for name, ref in value.items():
        where = (*path, name)
        label = f"credentials.{name} of {provider_name}"
        if provider is not None and name not in known:
            src.error(
                where,
                f"unknown credential field {name!r} for {provider_name}; it takes: "
                f"{', '.join(known) or 'no credentials'}",
            )
            continue
        variable = _variable(src, where, label, ref)
        if variable is None:
            continue
        out.variables[name] = variable
        if resolve:
            secret = _resolve(src, where, f"credentials.{name} of {address}", variable, environ)
            if secret is not None:
                out.values[name] = secret
    for f in known.values():
        if f.required and f.name not in value:
            src.error(
                path,
                f"credentials of {provider_name} are missing the required field "
                f"{f.name!r} ({f.label}); add {f.name}: ${{VAR}}",
            )
    return out


def _variable(src: SourceDocument, where: Loc, label: str, ref: Any) -> str | None:
    """The variable a value refers to, or None after reporting why it is refused."""
    match = REFERENCE.match(ref) if isinstance(ref, str) else None
    if match is None:
        if isinstance(ref, str) and "${" in ref:
            src.error(
                where,
                f"{label} is not a whole ${{VAR}} reference; write only the "
                "reference, e.g. ${ACME_API_KEY}, and put the whole value in the "
                "variable",
            )
        else:
            src.error(
                where,
                f"{label} is a literal value; plaintext secrets do not go into "
                "git: use a ${VAR} reference and set the variable in the "
                "environment",
            )
        return None
    variable = match.group(1)
    if not VARIABLE.match(variable):
        src.error(
            where,
            f"{label} refers to an invalid variable name; names are upper-case "
            "letters, digits and '_', starting with a letter (e.g. ACME_API_KEY)",
        )
        return None
    if variable.startswith(RESERVED_PREFIX):
        src.error(
            where,
            f"{label} refers to {variable}; variables starting with "
            f"{RESERVED_PREFIX} are the reconciler's own settings and are never "
            "sent to a provider: use another name",
        )
        return None
    return variable


def _resolve(
    src: SourceDocument, where: Loc, label: str, variable: str, environ: Mapping[str, str]
) -> Secret | None:
    raw = environ.get(variable)
    if raw is None:
        src.error(
            where, f"environment variable {variable} is not set ({label}); set it before running"
        )
        return None
    if raw == "":
        src.error(
            where, f"environment variable {variable} is empty ({label}); set it to the credential"
        )
        return None
    return Secret(raw, source=variable)
