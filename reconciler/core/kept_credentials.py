"""``credentials: keep`` (SPEC section 9): manage a connection, not its credentials.

A connection whose manifest says ``credentials: keep`` keeps the credentials stored in the
database: no variable is read, nothing is encrypted, no health check runs for them, and the
plan never sees them change. There must be something to keep: a connection of the manifest's
owner already in the database (managed, or unmanaged and adopted). Connecting a new one, or
changing the owner (the stored credentials are bound to their user), needs variables.

The planner asks this module; apply reads ``ConnectionSpec.keep_credentials`` in the plan.
"""

from __future__ import annotations

from reconciler.core.desired import DesiredConnection
from reconciler.core.state import ObservedConnection, ObservedInstance

# the mark of a signing secret's field (``reconciler.core.remote.signing_secret_field``)
SECRET_FIELD_MARK = ".signing_secret."
KEPT_MARK = "credentials_kept"  # shown in a plan's view of a connection that keeps them


def kept_connection(
    conn: DesiredConnection, inst: ObservedInstance | None
) -> ObservedConnection | None:
    """The stored connection whose credentials ``conn`` keeps: the managed one, else the
    owner's (to be adopted)."""
    if inst is None:
        return None
    managed = inst.managed_connection
    if managed is not None:
        return managed
    return next((c for c in inst.connections if c.user_email == conn.owner), None)


def keep_problem(conn: DesiredConnection, inst: ObservedInstance | None) -> str | None:
    """Why ``credentials: keep`` cannot be honoured for ``conn`` (None: it can)."""
    if not conn.keep_credentials:
        return None
    existing = kept_connection(conn, inst)
    if existing is None:
        return (
            f"{conn.address} says credentials: keep, but {conn.owner} has no connection to "
            f"{conn.provider} in {conn.organization} yet: there is nothing to keep. Give the "
            "credentials as ${VAR} references to connect it"
        )
    if existing.user_email != conn.owner:
        return (
            f"{conn.address} says credentials: keep, but its owner changes from "
            f"{existing.user_email} to {conn.owner}: the stored credentials are "
            f"{existing.user_email}'s. Give the credentials as ${{VAR}} references to change "
            "the owner"
        )
    return None


def kept_fields(conn: DesiredConnection, inst: ObservedInstance | None) -> tuple[str, ...]:
    """The stored credential fields ``conn`` keeps (none without ``keep``)."""
    if not conn.keep_credentials:
        return ()
    existing = kept_connection(conn, inst)
    if existing is None:
        return ()
    # a resource's signing secret (SPEC section 8) is not a credential of the connection
    return tuple(sorted(f for f in existing.credentials if SECRET_FIELD_MARK not in f))
