"""Where a provider's API is: the catalog's origin, or the operator's override.

``RECONCILER_BASE_URL_<NAME>`` replaces the origin and may carry a path prefix, so tests,
demos and staging can point a provider at a simulator. Manifests can never change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import urlsplit

from reconciler.core.catalog import Provider
from reconciler.core.errors import ConfigError


def base_url_env_var(provider: Provider) -> str:
    return f"RECONCILER_BASE_URL_{provider.env_name}"


def base_url_for(provider: Provider, environ: Mapping[str, str]) -> tuple[str, bool]:
    """The URL the provider's checks go to, and whether the environment overrode it.

    ``RECONCILER_BASE_URL_<NAME>`` replaces the catalog's origin and may carry a path prefix
    (``http://127.0.0.1:8080/stripe``), so tests and staging can use a simulator.
    """
    name = base_url_env_var(provider)
    value = environ.get(name, "").strip()
    if not value:
        return provider.base_url, False
    return _override(name, value), True


@lru_cache(maxsize=64)
def _override(name: str, value: str) -> str:
    """``value`` of ``name`` checked; cached, as a plan's reads ask once per connection."""
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
    ):
        raise ConfigError(
            f"{name} must be an http(s) URL with an optional path prefix, and no query or "
            "user name or password, e.g. http://127.0.0.1:8080/stripe"
        )
    return value.rstrip("/")
