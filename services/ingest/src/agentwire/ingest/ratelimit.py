"""Per-key rate limits: an in-process token bucket (so the limit holds per pod)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from agentwire.auth import Principal
from agentwire.service.http import ApiError

MAX_BUCKETS = 100_000


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """``per_minute`` requests per key, refilled continuously; a key's own limit wins."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def check(self, principal: Principal) -> dict[str, str]:
        """Take one request from the key's bucket; the rate-limit headers, or a 429 ApiError."""
        limit = principal.per_minute or self._per_minute
        rate = limit / 60.0
        now = self._clock()
        key = principal.key_id or principal.key_name
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(float(limit), now)
        bucket.tokens = min(float(limit), bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(int(bucket.tokens)),
            "X-RateLimit-Reset": str(math.ceil((limit - bucket.tokens) / rate)),
        }
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil((1.0 - bucket.tokens) / rate)))
            raise ApiError(429, "Rate limit exceeded", headers)
        return headers
