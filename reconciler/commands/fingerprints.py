"""Keyed fingerprints of the secrets the manifests name: how a plan sees that a secret
changed without decrypting anything or showing the value."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler.core.desired import Desired
from reconciler.core.errors import CryptoError
from reconciler.core.state import Observed, ObservedCredential
from reconciler.crypto import CredentialAddress, KeyRing


def fingerprints_for(
    keyring: KeyRing,
    desired: Desired,
    observed: Observed,
    *,
    between: Callable[[], None] | None = None,
) -> dict[tuple[str, str, str, str], dict[str, str]]:
    """Keyed fingerprints of every secret the manifests name, under the primary key and under
    the key each stored fingerprint was made with (so a comparison never needs decryption).
    ``between`` is called after each organization (plan's reads go on meanwhile)."""
    out: dict[tuple[str, str, str, str], dict[str, str]] = {}
    primary = keyring.primary_id
    for org in desired.organizations.values():
        if between is not None:
            between()
        for conn in org.connections:
            if not conn.credentials:
                continue
            inst = observed.instances.get((org.name, conn.provider))
            existing = inst.managed_connection if inst else None
            stored_creds: Mapping[str, ObservedCredential] = (
                existing.credentials if existing else {}
            )
            for fname, secret in conn.credentials.items():
                addr = CredentialAddress(org.name, conn.provider, conn.owner, fname)
                ids = [primary]
                stored = stored_creds.get(fname)
                if stored is not None and stored.fingerprint_key_id:
                    # a row without a fingerprint was written by the SaaS, not by apply (e.g.
                    # adopted with credentials: keep): it differs from any value and is
                    # replaced, never decrypted, so its key need not be in the ring
                    _require_keys(keyring, stored, addr, existing.user_email if existing else "")
                    if stored.fingerprint_key_id != primary:
                        ids = sorted((primary, stored.fingerprint_key_id))
                value = secret.reveal()
                out[(org.name, conn.provider, conn.owner, fname)] = {
                    k: keyring.fingerprint(value, addr, key_id=k) for k in ids
                }
    return out


def _require_keys(
    keyring: KeyRing, stored: ObservedCredential, addr: CredentialAddress, user: str
) -> None:
    """A stored credential whose key left the ring cannot be compared, nor ever decrypted."""
    for kid in (stored.key_id, stored.fingerprint_key_id):
        if kid not in keyring.key_ids:
            raise CryptoError(
                f"credential {addr.organization}/{addr.provider}/{user or addr.user}/"
                f"{addr.field} is under key id {kid!r}, which is not in "
                "RECONCILER_ENCRYPTION_KEYS; put that key back in the ring (after the first) and "
                "run `reconciler keys rotate` before removing it"
            )
