"""Per-caller request rates for the server: a token bucket per caller, refilled continuously."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """At most ``per_minute`` requests a minute per caller on average, with bursts of up to a tenth of that."""

    def __init__(self, per_minute: int) -> None:
        if per_minute < 1:
            raise ValueError(f"a rate needs at least 1 request a minute, not {per_minute}")
        self.rate = per_minute / 60.0
        self.burst = max(per_minute / 10.0, 1.0)
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # caller -> (tokens, when)

    def take(self, caller: str) -> float:
        """Count one request of ``caller``: 0 when allowed, else the seconds until one would be."""
        now = time.monotonic()
        with self._lock:
            tokens, when = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - when) * self.rate)
            if tokens >= 1.0:
                self._buckets[caller] = (tokens - 1.0, now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1.0 - tokens) / self.rate
