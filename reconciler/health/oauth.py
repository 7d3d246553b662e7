"""The OAuth2 refresh-token grant (RFC 6749 section 6) for ``auth: oauth2`` providers.

The client authenticates in the form body (``client_secret_post``). A token endpoint that says
``invalid_grant`` or ``access_denied`` means the user's grant is gone: ``oauth_denied``. Rate
limits, outages and timeouts follow the same retry policy as health checks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta

from reconciler.core.catalog import Provider
from reconciler.core.secret import Secret
from reconciler.health.attempts import attempt_until_final, make_client, send_prepared
from reconciler.health.classify import Answer, Verdict, generic_outcome, lookup
from reconciler.health.policy import RetryPolicy, hinted_wait
from reconciler.health.redaction import quiet_transport_loggers
from reconciler.health.request import USER_AGENT, PreparedRequest, reveal
from reconciler.health.result import CheckResult, TokenResult, build_result

DENIED_ERRORS = frozenset({"invalid_grant", "access_denied"})
CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client"})
DEFAULT_POLICY = RetryPolicy()


def token_verdict(answer: Answer, secrets: list[str]) -> Verdict:
    """How a token endpoint's answer reads; only the OAuth ``error`` code is kept."""
    if answer.status is None:
        return Verdict("unreachable", detail=answer.error)
    document = answer.json()
    error = lookup(document, "error")
    code = error if isinstance(error, str) and error.isidentifier() else None
    if code is not None and any(s and s in code for s in secrets):
        code = None
    if code in DENIED_ERRORS:
        return Verdict("oauth_denied", code, detail=f"HTTP {answer.status}")
    if code in CLIENT_ERRORS:
        return Verdict("invalid_credentials", code, detail=f"HTTP {answer.status}")
    outcome = generic_outcome(answer.status)
    if outcome == "healthy" and not isinstance(lookup(document, "access_token"), str):
        return Verdict("unreachable", detail="token answer without access_token")
    return Verdict(outcome, code, detail="" if outcome == "healthy" else f"HTTP {answer.status}")


def _tokens(answer: Answer, old_refresh: Secret | str, attempts: int, ms: int) -> TokenResult:
    document = json.loads(answer.body)
    expires_in = document.get("expires_in")
    expires_at = None
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        expires_at = datetime.now(UTC) + timedelta(seconds=float(expires_in))
    new_refresh = document.get("refresh_token")
    refresh = (
        Secret(new_refresh)
        if isinstance(new_refresh, str) and new_refresh
        else old_refresh
        if isinstance(old_refresh, Secret)
        else Secret(old_refresh)
    )
    scope = document.get("scope")
    return TokenResult(
        access_token=Secret(document["access_token"]),
        refresh_token=refresh,
        expires_at=expires_at,
        scope=scope if isinstance(scope, str) else "",
        attempts=attempts,
        response_ms=ms,
    )


async def exchange_refresh_token_async(
    provider: Provider,
    base_url: str,
    client_id: Secret | str,
    client_secret: Secret | str,
    refresh_token: Secret | str,
    *,
    key: Hashable = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> TokenResult | CheckResult:
    """Exchange a refresh token for an access token at the provider's ``oauth2.token_path``.

    Returns the tokens, or an unhealthy CheckResult (``oauth_denied`` for a revoked grant).
    """
    if provider.oauth2 is None:
        raise ValueError(f"provider {provider.name!r} has no oauth2 section")
    quiet_transport_loggers()
    secrets = [reveal(client_id), reveal(client_secret), reveal(refresh_token)]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": secrets[2],
        "client_id": secrets[0],
        "client_secret": secrets[1],
    }
    prepared = PreparedRequest(
        method="POST",
        url=base_url.rstrip("/") + provider.oauth2.token_path,
        params=(),
        headers=(("User-Agent", USER_AGENT), ("Accept", "application/json")),
        secret_params=frozenset(),
    )
    last: list[Answer] = []

    async def send() -> Answer:
        answer = await send_prepared(client, prepared, data=form)
        last[:] = [answer]
        return answer

    def judge(answer: Answer) -> tuple[Verdict, float | None]:
        return token_verdict(answer, secrets), hinted_wait(answer.headers, ["Retry-After"], [])

    async with make_client(policy, 1) as client:
        attempted = await attempt_until_final(send, judge, policy, label=f"{provider.name} token")
    if attempted.verdict.outcome == "healthy" and last:
        return _tokens(last[0], refresh_token, attempted.attempts, attempted.response_ms)
    return build_result(
        key=key,
        provider=provider,
        outcome=attempted.verdict.outcome,
        response_ms=attempted.response_ms,
        attempts=attempted.attempts,
        provider_code=attempted.verdict.provider_code,
        http_status=attempted.http_status,
        detail=attempted.verdict.detail,
    )


def exchange_refresh_token(
    provider: Provider,
    base_url: str,
    client_id: Secret | str,
    client_secret: Secret | str,
    refresh_token: Secret | str,
    *,
    key: Hashable = None,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> TokenResult | CheckResult:
    """``exchange_refresh_token_async`` for synchronous callers."""
    return asyncio.run(
        exchange_refresh_token_async(
            provider, base_url, client_id, client_secret, refresh_token, key=key, policy=policy
        )
    )
