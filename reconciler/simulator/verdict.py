"""How the simulator decides what to answer for a key: substrings of its value (see keyconv),
matched case-insensitively so that `AIzaInvalid` and `sk_test_invalid` both read as "invalid".

The rules are a pure function of the key and of how often it was used before, so tests can say
"a key containing `ratelimit2`" and know exactly what they will get.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """The kinds of answer every dialect knows how to give."""

    SUCCESS = "success"
    MISSING = "missing"  # no key, or the key sent in the wrong place
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"  # a transient 503 (flaky2, failure_rate)
    OVERLOADED = "overloaded"
    OUTAGE = "outage"
    UNKNOWN_ERROR = "unknown_error"
    DAILY_LIMIT = "daily_limit"
    NETBLOCK = "netblock"
    FORBIDDEN = "forbidden"
    EXPIRED = "expired"
    REVOKED = "revoked"
    MALFORMED = "malformed"
    INVALID = "invalid"


# First match wins, in this order (keyconv).
_RULES: tuple[tuple[str, Outcome], ...] = (
    ("ratelimited", Outcome.RATE_LIMITED),
    ("overloaded", Outcome.OVERLOADED),
    ("outage", Outcome.OUTAGE),
    ("unknownerror", Outcome.UNKNOWN_ERROR),
    ("dailylimit", Outcome.DAILY_LIMIT),
    ("netblock", Outcome.NETBLOCK),
    ("forbidden", Outcome.FORBIDDEN),
    ("expired", Outcome.EXPIRED),
    ("revoked", Outcome.REVOKED),
    ("malformed", Outcome.MALFORMED),
    ("invalid", Outcome.INVALID),
)

# Keys that fail their first N uses with this outcome, then succeed.
TRANSIENT: tuple[tuple[str, Outcome], ...] = (
    ("ratelimit2", Outcome.RATE_LIMITED),
    ("flaky2", Outcome.UNAVAILABLE),
)
TRANSIENT_FAILURES = 2


def transient_outcome(key: str) -> Outcome | None:
    """The outcome of the first uses of a `ratelimit2`/`flaky2` key, else None."""
    lowered = key.lower()
    for word, outcome in TRANSIENT:
        if word in lowered:
            return outcome
    return None


def steady_outcome(key: str) -> Outcome:
    """The outcome of a key that does not depend on how often it was used. Pure."""
    lowered = key.lower()
    for word, outcome in _RULES:
        if word in lowered:
            return outcome
    return Outcome.SUCCESS
