"""Health checks: verify a credential against its provider, the way the real API expects.

Generic over the catalog: a provider's ``health_check`` (request, rules, error code and identity
paths, rate-limit headers) is all it takes; there is no per-provider Python.

Public surface::

    CheckRequest, CheckResult, TokenResult     what is asked and what is answered
    check_many (async), run_checks (sync)      run checks concurrently under a RetryPolicy
    not_sent                                   the result of a check an open breaker held back
    base_url_for                               catalog origin or RECONCILER_BASE_URL_<NAME>
    Breakers                                   per-provider circuit breakers for one run
    exchange_refresh_token[_async]             OAuth2 refresh-token grant
    message_for                                the exact SPEC section 4 messages
"""

from typing import TYPE_CHECKING

from reconciler.core.lazy_exports import exports
from reconciler.health.breaker import Breakers
from reconciler.health.policy import RetryPolicy
from reconciler.health.request import base_url_env_var, base_url_for, prepare_request
from reconciler.health.result import (
    FAILURE_MESSAGES,
    CheckRequest,
    CheckResult,
    TokenResult,
    message_for,
)

if TYPE_CHECKING:
    from reconciler.health.oauth import exchange_refresh_token, exchange_refresh_token_async
    from reconciler.health.runner import check_many, check_one, not_sent, run_checks

# what sends a request loads the HTTP stack (aiohttp, httpx: 0.1-0.15 s) when first used, so a
# command that checks nothing (a no-op apply) never imports it
__getattr__ = exports(
    __name__,
    {
        "exchange_refresh_token": "oauth",
        "exchange_refresh_token_async": "oauth",
        "check_many": "runner",
        "check_one": "runner",
        "not_sent": "runner",
        "run_checks": "runner",
    },
)


__all__ = [
    "FAILURE_MESSAGES",
    "Breakers",
    "CheckRequest",
    "CheckResult",
    "RetryPolicy",
    "TokenResult",
    "base_url_env_var",
    "base_url_for",
    "check_many",
    "check_one",
    "exchange_refresh_token",
    "exchange_refresh_token_async",
    "message_for",
    "not_sent",
    "prepare_request",
    "run_checks",
]
