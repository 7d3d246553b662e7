"""Keyed fingerprints of the secrets the manifests name: how a plan sees that a secret
changed without decrypting anything or showing the value."""

from __future__ import annotations

from reconciler.core.desired import Desired
from reconciler.core.errors import CryptoError
from reconciler.core.state import Observed
from reconciler.crypto import CredentialAddress, KeyRing


def fingerprints_for(
    keyring: KeyRing, desired: Desired, observed: Observed
) -> dict[tuple[str, str, str, str], dict[str, str]]:
    """Keyed fingerprints of every secret the manifests name, under the primary key and under
    the key each stored fingerprint was made with (so a comparison never needs decryption)."""
    out: dict[tuple[str, str, str, str], dict[str, str]] = {}
    for org in desired.organizations.values():
        for conn in org.connections:
            inst = observed.instances.get((org.name, conn.provider))
            existing = inst.managed_connection if inst else None
            for fname, secret in conn.credentials.items():
                addr = CredentialAddress(org.name, conn.provider, conn.owner, fname)
                ids = {keyring.primary_id}
                stored = existing.credentials.get(fname) if existing else None
                if stored is not None:
                    for kid in (stored.key_id, stored.fingerprint_key_id):
                        if kid not in keyring.key_ids:
                            raise CryptoError(
                                f"credential {org.name}/{conn.provider}/"
                                f"{existing.user_email if existing else conn.owner}/{fname} is "
                                f"under key id {kid!r}, which is not in "
                                "RECONCILER_ENCRYPTION_KEYS; put that key back in the ring "
                                "(after the first) and run `reconciler keys rotate` before "
                                "removing it"
                            )
                    ids.add(stored.fingerprint_key_id)
                out[(org.name, conn.provider, conn.owner, fname)] = {
                    k: keyring.fingerprint(secret.reveal(), addr, key_id=k) for k in sorted(ids)
                }
    return out
