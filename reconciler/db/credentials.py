"""Reading stored credentials: the one place that selects them, for apply (reactivation and
value probes), ``health``, and ``keys status`` / ``keys rotate``.

Every credential comes back with its address (organization, provider, user, field), which is
what its envelope is bound to; ``decrypt`` turns a connection's credentials into ``Secret``
values only where a check needs them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from reconciler.core.secret import Secret
from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.schema import Connection, Credential, Instance


@dataclass(frozen=True)
class StoredCredential:
    connection_id: int
    address: CredentialAddress
    ciphertext: str
    key_id: str
    expires_at: datetime | None = None

    @property
    def field(self) -> str:
        return self.address.field


def _joined() -> Select[Credential, str, str, str]:
    return (
        select(Credential, Connection.user_email, Instance.organization, Instance.provider)
        .join(Connection, Credential.connection_id == Connection.id)
        .join(Instance, Connection.instance_id == Instance.id)
    )


def credential_rows(s: Session) -> list[tuple[Credential, CredentialAddress]]:
    """Every credential row (to re-encrypt it) with its address, in id order."""
    return [
        (cred, CredentialAddress(org, provider, user, cred.field))
        for cred, user, org, provider in s.execute(_joined().order_by(Credential.id))
    ]


def stored_credentials(
    s: Session, *, organization: str | None = None, provider: str | None = None
) -> list[StoredCredential]:
    """Credentials, all or those of one organization's provider, in id order."""
    q = _joined().order_by(Credential.id)
    if organization is not None:
        q = q.where(Instance.organization == organization)
    if provider is not None:
        q = q.where(Instance.provider == provider)
    return [
        StoredCredential(
            cred.connection_id,
            CredentialAddress(org, prov, user, cred.field),
            cred.ciphertext,
            cred.key_id,
            cred.expires_at,
        )
        for cred, user, org, prov in s.execute(q)
    ]


def managed_credentials(s: Session, organization: str, provider: str) -> list[StoredCredential]:
    """The credentials of the manifest-managed connection of ORG/PROVIDER."""
    managed = set(
        s.scalars(
            select(Connection.id)
            .join(Instance, Connection.instance_id == Instance.id)
            .where(
                Instance.organization == organization,
                Instance.provider == provider,
                Connection.managed_by == "manifest",
            )
        )
    )
    return [
        c
        for c in stored_credentials(s, organization=organization, provider=provider)
        if c.connection_id in managed
    ]


def decrypt(ring: KeyRing, credentials: Iterable[StoredCredential]) -> dict[str, Secret]:
    """Field -> value of one connection's credentials (each named by its field)."""
    return {c.field: Secret(ring.decrypt(c.ciphertext, c.address), c.field) for c in credentials}


def count_by_key(s: Session) -> dict[str, int]:
    """How many credentials each key id protects."""
    return {
        kid: n
        for kid, n in s.execute(
            select(Credential.key_id, func.count()).group_by(Credential.key_id)
        ).all()
    }
