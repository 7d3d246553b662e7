"""keys status and keys rotate."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.audit import AuditWriter
from reconciler.commands.auditcmd import _session
from reconciler.commands.inputs import keyring
from reconciler.core.errors import CryptoError
from reconciler.db.credentials import count_by_key, credential_rows
from reconciler.db.locking import lock_all_organizations

ROTATE_LOCK_TIMEOUT = 60.0  # seconds to wait for applies in progress to finish


def key_status(environ: Mapping[str, str]) -> str:
    """A table of key ids (the ring's and the database's) with the credentials each protects."""
    ring = keyring(environ)
    with _session(environ) as s:
        counts = count_by_key(s)
    lines = [f"{'key id':<32} {'credentials':>11}  in ring"]
    for kid in sorted(set(counts) | set(ring.key_ids)):
        where = (
            "first (encrypts)"
            if kid == ring.primary_id
            else ("yes" if kid in ring.key_ids else "NO")
        )
        lines.append(f"{kid:<32} {counts.get(kid, 0):>11}  {where}")
    missing = [k for k in counts if k not in ring.key_ids]
    if missing:
        lines.append(
            f"Warning: credentials under {', '.join(sorted(missing))} cannot be decrypted "
            "with this key ring."
        )
    return "\n".join(lines) + "\n"


def rotate(environ: Mapping[str, str], actor: str) -> str:
    """Re-encrypt every credential (and recompute its fingerprint) under the first key, in one
    transaction; any failure changes nothing. The audit entry it writes attests every earlier
    entry, so the old key can leave the ring and ``audit verify`` still passes.

    Returns counts only: never a value, a ciphertext or a fingerprint."""
    ring = keyring(environ)
    with _session(environ) as s, s.begin():
        # Take the write lock first (every organization's on PostgreSQL, then the state row;
        # flushing the serial bump takes SQLite's write lock), so no apply writes a credential
        # between our read and our commit.
        lock_all_organizations(s, timeout=ROTATE_LOCK_TIMEOUT, holder=f"keys rotate by {actor}")
        w = AuditWriter(s, ring, actor, "keys rotate")
        w.lock()
        s.flush()
        rows = credential_rows(s)
        before: dict[str, int] = {}
        for cred, addr in rows:
            before[cred.key_id] = before.get(cred.key_id, 0) + 1
            if cred.key_id not in ring.key_ids:
                raise CryptoError(
                    f"credential {addr} is encrypted under key id {cred.key_id!r}, "
                    "which is not in RECONCILER_ENCRYPTION_KEYS; nothing was changed"
                )
            value = ring.decrypt(cred.ciphertext, addr)
            cred.ciphertext = ring.encrypt(value, addr)
            cred.key_id = ring.primary_id
            cred.fingerprint = ring.fingerprint(value, addr)
            cred.fingerprint_key_id = ring.primary_id
            del value
        w.attest_rotation(
            "*",
            f"keys/{ring.primary_id}",
            {"credentials": len(rows), "from": dict(sorted(before.items())), "to": ring.primary_id},
        )
    moved = ", ".join(f"{n} from {k}" for k, n in sorted(before.items())) or "none"
    return f"Re-encrypted {len(rows)} credential(s) under key {ring.primary_id} ({moved})."


__all__ = ["key_status", "rotate"]
