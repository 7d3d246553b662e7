"""The per-key token bucket, on a fake clock."""

from __future__ import annotations

import pytest

from reconciler.core.catalog import load_catalog
from reconciler.health.limits import RateLimits, TokenBucket, share_among


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_no_second_ever_sees_more_than_the_limit() -> None:
    clock = Clock()
    bucket = TokenBucket(10, clock=clock)
    sent: list[float] = []
    for _ in range(100):
        clock.now = max(clock.now, (sent[-1] if sent else 0.0))
        wait = bucket.reserve()
        sent.append(clock.now + wait)
    for start in sent:  # 80 % of the limit: a margin for requests that arrive late
        assert sum(1 for t in sent if start <= t < start + 1.0) <= 8
    assert sent[-1] == pytest.approx((100 - 1) / 7, abs=0.01)  # 1 at once, then 7 a second


def test_a_429_holds_the_key_for_everyone() -> None:
    clock = Clock()
    bucket = TokenBucket(10, clock=clock)
    bucket.hold(2.0)
    assert bucket.reserve() >= 2.0


def test_buckets_are_shared_per_provider_and_key() -> None:
    limits = RateLimits(private=True)
    assert limits.bucket("quo", "k1", 10) is limits.bucket("quo", "k1", 10)
    assert limits.bucket("quo", "k1", 10) is not limits.bucket("quo", "k2", 10)
    assert limits.bucket("quo", "k1", 10) is not limits.bucket("stripe", "k1", 25)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)


def test_every_rate_limits_of_a_run_shares_the_buckets() -> None:
    """Apply's provider calls, plan's refresh and the health checks each build their own
    ``RateLimits``; they still pace one key together."""
    assert RateLimits().bucket("quo", "k-run", 10) is RateLimits().bucket("quo", "k-run", 10)
    private = RateLimits(private=True)
    assert private.bucket("quo", "k-run", 10) is not RateLimits().bucket("quo", "k-run", 10)


def test_the_catalog_gives_each_key_its_rate() -> None:
    providers = load_catalog().providers
    stripe, quo = providers["stripe"].rate_limit, providers["quo"].rate_limit
    assert stripe is not None and quo is not None
    assert stripe.for_key("sk_test_abc") == 25 and stripe.for_key("sk_live_abc") == 100
    assert stripe.for_key("rk_live_abc") == 100 and quo.for_key("anything") == 10
    assert providers["postmark"].rate_limit is None  # no documented limit: nothing paced


def test_worker_processes_each_pace_a_key_at_their_share() -> None:
    """``--workers N``: each of the N processes paces every key at 1/N of its limit, so
    organizations of different workers that share a key stay under it together."""
    try:
        share_among(2)
        halved = RateLimits().bucket("quo", "k-shared", 10)
        assert halved.per_second == pytest.approx(5)
        # 2 processes x (1 at once, then 3.5 a second): at most 9 in any second, under 10
        assert (halved.burst + halved.rate) * 2 <= 10
        assert RateLimits(private=True).bucket("quo", "k-shared", 10).per_second == 10
    finally:
        share_among(1)
    assert RateLimits().bucket("quo", "k-shared", 10).per_second == 10
