"""What a health check is asked to do and what it answers, with the exact user-facing messages.

The messages are a product contract (SPEC section 4): the CLI, the database and the report show
them verbatim, so they live in one place.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from reconciler.core.catalog import Provider
from reconciler.core.secret import Secret

Status = Literal["healthy", "unhealthy"]
FailureType = Literal["invalid_credentials", "unreachable", "rate_limited", "oauth_denied"]

FAILURE_MESSAGES: Mapping[str, str] = {
    "invalid_credentials": "The API key you entered is invalid. Please check your credentials.",
    "unreachable": "Could not reach {provider}. The service may be temporarily unavailable.",
    "rate_limited": "Connection test was rate limited. Please wait a moment.",
    "oauth_denied": "Connection was cancelled. You denied access.",
}
SUCCESS_MESSAGE = "{provider} connected successfully"


def message_for(outcome: str, display_name: str) -> str:
    """The exact SPEC section 4 sentence for an outcome (``healthy`` or a failure type)."""
    template = SUCCESS_MESSAGE if outcome == "healthy" else FAILURE_MESSAGES[outcome]
    return template.format(provider=display_name)


@dataclass(frozen=True)
class CheckRequest:
    """One credential set to verify against one provider at ``base_url`` (see ``base_url_for``).

    ``key`` is the caller's id for the check, e.g. ``(organization, provider)``; it is handed
    back unchanged in the result so results can be matched to requests.
    """

    key: Hashable
    provider: Provider
    credentials: Mapping[str, Secret]
    base_url: str


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check, free of secrets and of the provider's response body.

    ``provider_code`` is the provider's own error code (e.g. ``api_key_expired``,
    ``REQUEST_DENIED``, ``10``) for operators; ``identity`` is what a successful answer says
    about the account (e.g. ``{"account_id": "acct_1", "mode": "test"}``). ``http_status`` and
    ``detail`` (e.g. ``ConnectTimeout``, ``deadline exceeded``) say why a check was unreachable.
    """

    key: Hashable
    provider: str
    status: Status
    failure_type: FailureType | None
    message: str
    response_ms: int
    provider_code: str | None
    identity: Mapping[str, str]
    attempts: int
    checked_at: datetime
    http_status: int | None = None
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"


@dataclass(frozen=True)
class TokenResult:
    """Tokens from an OAuth2 refresh-token grant; the caller stores them encrypted."""

    access_token: Secret
    refresh_token: Secret
    expires_at: datetime | None
    scope: str = ""
    attempts: int = 1
    response_ms: int = 0


def build_result(
    *,
    key: Hashable,
    provider: Provider,
    outcome: str,
    response_ms: int,
    attempts: int,
    provider_code: str | None = None,
    identity: Mapping[str, str] | None = None,
    http_status: int | None = None,
    detail: str = "",
) -> CheckResult:
    """A CheckResult whose status, failure type and message all follow from ``outcome``."""
    healthy = outcome == "healthy"
    return CheckResult(
        key=key,
        provider=provider.name,
        status="healthy" if healthy else "unhealthy",
        failure_type=None if healthy else outcome,  # type: ignore[arg-type]
        message=message_for(outcome, provider.display_name),
        response_ms=response_ms,
        provider_code=None if healthy else provider_code,
        identity=dict(identity or {}) if healthy else {},
        attempts=attempts,
        checked_at=datetime.now(UTC),
        http_status=http_status,
        detail=detail,
    )
