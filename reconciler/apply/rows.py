"""Rows made from check results and tokens, shared by apply and ``reconciler health``."""

from __future__ import annotations

from typing import Any

from reconciler.crypto import CredentialAddress, KeyRing
from reconciler.db.schema import Health
from reconciler.health import CheckResult, TokenResult


def health_values(instance_id: int, connection_id: int | None, r: CheckResult) -> dict[str, Any]:
    """The columns of the ``integration_health`` row of a check result (for a bulk insert)."""
    return {
        "instance_id": instance_id,
        "connection_id": connection_id,
        "status": r.status,
        "failure_type": r.failure_type,
        "message": r.message,
        "response_ms": r.response_ms,
        "provider_code": r.provider_code,
        "attempts": r.attempts,
        "checked_at": r.checked_at,
    }


def health_row(instance_id: int, connection_id: int | None, r: CheckResult) -> Health:
    """The ``integration_health`` row of a check result."""
    return Health(**health_values(instance_id, connection_id, r))


def token_envelopes(
    keyring: KeyRing, organization: str, provider: str, user: str, tokens: TokenResult
) -> dict[str, str]:
    """OAuth2 tokens from a refresh-token grant, encrypted for their credential rows."""
    return {
        name: keyring.encrypt(
            secret.reveal(), CredentialAddress(organization, provider, user, name)
        )
        for name, secret in (
            ("access_token", tokens.access_token),
            ("refresh_token", tokens.refresh_token),
        )
    }
