"""Per-key request rate (token buckets, answered with 429 and Retry-After) and a daily job quota."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class TokenBucket:
    """`burst` tokens, refilled at `rate` per second; each request takes one."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = float(burst), now

    def take(self, now: float) -> float:
        """0 when a token was taken; else the seconds until one will be there."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """One token bucket per key, in this process's memory (each server counts its own)."""

    def __init__(
        self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not math.isfinite(rate_per_s) or rate_per_s <= 0:
            raise ValueError(f"rate_per_s={rate_per_s!r}: use a number > 0")
        if burst < 1:
            raise ValueError(f"burst={burst!r}: use a whole number >= 1")
        self._rate, self._burst, self._clock = rate_per_s, burst, clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def wait_s(self, key: str) -> float:
        """Take a token for `key`: 0 when allowed, else the seconds to wait before retrying."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, now)
            return bucket.take(now)


def start_of_day(now: datetime) -> datetime:
    """Midnight UTC of `now`'s day: quotas count from there."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def quota_wait_s(used: int, wanted: int, limit: int | None, now: datetime) -> float:
    """0 when `wanted` more jobs fit in today's quota; else the seconds until midnight UTC."""
    if limit is None or used + wanted <= limit:
        return 0.0
    return (start_of_day(now) + timedelta(days=1) - now).total_seconds()
