"""Turning a catalog health check and credentials into an HTTP request, and showing it safely.

Where the request goes is decided here: the catalog's ``base_url`` or the operator's
``RECONCILER_BASE_URL_<NAME>`` override, never a manifest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from reconciler.core.catalog import HealthRequest, Provider
from reconciler.core.endpoints import base_url_env_var as base_url_env_var
from reconciler.core.endpoints import base_url_for as _base_url_for
from reconciler.core.secret import SENSITIVE, Secret

USER_AGENT = "reconciler-health/1"
REDACTED = SENSITIVE
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")  # printable ASCII: what every API's keys use
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def base_url_for(provider: Provider, environ: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """``reconciler.core.endpoints.base_url_for``, reading ``os.environ`` by default."""
    return _base_url_for(provider, os.environ if environ is None else environ)


@dataclass(frozen=True)
class PreparedRequest:
    """A health-check request ready to send. Holds revealed secrets: never log or show it;
    ``redacted_url`` is the form that may be shown."""

    method: str
    url: str
    params: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    secret_params: frozenset[str]
    sendable: bool = True  # False when a header value could not be sent (control characters)

    @property
    def redacted_url(self) -> str:
        shown = [(k, REDACTED if k in self.secret_params else v) for k, v in self.params]
        query = urlencode(shown, safe="()")
        return f"{self.url}?{query}" if query else self.url


def required_fields(request: HealthRequest) -> set[str]:
    """The credential fields the auth formats refer to (e.g. ``api_key``, ``access_token``)."""
    return {m for placement in request.auth for m in _FIELD.findall(placement.format)}


def prepare_request(
    provider: Provider, base_url: str, credentials: Mapping[str, Secret | str]
) -> PreparedRequest:
    """Build the provider's health-check request; raise ValueError naming a missing field."""
    spec = provider.health_check.request
    missing = sorted(required_fields(spec) - set(credentials))
    if missing:
        raise ValueError(
            f"the health check of {provider.name!r} needs the credential field(s) "
            + ", ".join(missing)
        )
    revealed = {name: reveal(value) for name, value in credentials.items()}
    params = list(spec.query.items())
    headers = [("User-Agent", USER_AGENT), *spec.headers.items()]
    secret_params: set[str] = set()
    for placement in spec.auth:
        value = _FIELD.sub(lambda m: revealed[m.group(1)], placement.format)
        if placement.location == "query":
            params.append((placement.name, value))
            secret_params.add(placement.name)
        else:
            headers.append((placement.name, value))
    return PreparedRequest(
        method=spec.method,
        url=base_url.rstrip("/") + spec.path,
        params=tuple(params),
        headers=tuple(headers),
        secret_params=frozenset(secret_params),
        sendable=all(_HEADER_VALUE.fullmatch(v) for _, v in headers),
    )


def reveal(value: Secret | str) -> str:
    return value.reveal() if isinstance(value, Secret) else str(value)
