"""Tests for core.serving.limits: a burst, then a wait, per caller."""

from __future__ import annotations

import pytest

from core.serving.limits import RateLimiter


@pytest.mark.parametrize("per_minute, burst_allowed", [(60, 6), (6, 1), (600, 60)])
def test_rate_limiter_allows_a_burst_then_refuses_with_the_wait(per_minute, burst_allowed):
    limiter = RateLimiter(per_minute)
    waits = [limiter.take("a") for _ in range(burst_allowed + 1)]
    assert waits[:burst_allowed] == [0.0] * burst_allowed
    assert 0 < waits[-1] <= 60 / per_minute + 1e-6
    assert limiter.take("b") == 0.0  # another caller has its own bucket


def test_rate_limiter_refuses_nonsense():
    with pytest.raises(ValueError):
        RateLimiter(0)
