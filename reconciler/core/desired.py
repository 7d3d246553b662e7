"""Desired state: what the manifests ask for, resolved against the catalog and the environment.

Plain frozen records. Secret values only ever appear wrapped in ``Secret``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.core.secret import Secret


@dataclass(frozen=True)
class DesiredResource:
    """One resource as the manifest declares it.

    ``identity`` is the value of the kind's identity field (an email, a phone number, a URL)
    for list kinds, or the kind name itself for object and value kinds. ``spec`` holds every
    field as plain JSON data (sorted keys), including ``default`` for kinds that have defaults.
    """

    kind: str
    identity: str
    spec: Mapping[str, Any]
    is_default: bool = False
    line: int | None = None


@dataclass(frozen=True)
class DesiredConnection:
    organization: str
    provider: str
    owner: str  # user email: whose personal connection this is
    credentials: Mapping[str, Secret]  # field -> value, from the environment
    credential_vars: Mapping[str, str]  # field -> environment variable name
    active: bool = True
    resources: tuple[DesiredResource, ...] = ()
    adopt: bool = False
    deletion_policy: Literal["delete", "orphan"] = "delete"
    prevent_destroy: bool = False
    # credentials: keep (SPEC section 9): credentials/credential_vars are empty, the stored
    # credentials stay; see reconciler.core.kept_credentials
    keep_credentials: bool = False
    file: str = ""
    line: int | None = None

    @property
    def address(self) -> str:
        return f"{self.organization}/{self.provider}"


@dataclass(frozen=True)
class DesiredOrganization:
    name: str
    members: Mapping[str, frozenset[str]]  # user email -> permissions
    connections: tuple[DesiredConnection, ...]
    allow_empty: bool = False
    file: str = ""
    line: int | None = None

    def connection(self, provider: str) -> DesiredConnection | None:
        return next((c for c in self.connections if c.provider == provider), None)


@dataclass(frozen=True)
class Desired:
    organizations: Mapping[str, DesiredOrganization] = field(default_factory=dict)
    git_commit: str | None = None
