"""The ``X-Reconciler-Signature`` header: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``, keyed with
RECONCILER_NOTIFY_SECRET over ``"<t>.<raw body>"`` (the scheme Stripe's webhooks use).

``verify`` is what a receiver does (docs/notifications.md shows it standalone): recompute, compare
in constant time, and refuse a ``t`` too far from now, so a captured request cannot be replayed
later.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Reconciler-Signature"
DEFAULT_TOLERANCE = 300  # seconds


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret``, made within ``tolerance`` seconds."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        k, _, v = item.strip().partition("=")
        parts.setdefault(k, []).append(v)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))
