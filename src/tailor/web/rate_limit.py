"""Token buckets per caller: how many requests a key may make per second, with a burst.

Reads nothing and writes nothing: the buckets live in the process's memory (each server
worker keeps its own, so N workers let a key through up to N times the rate). Used by the
key checks of both servers (`tailor.events.key_ring.KeyGuard`), keyed by key id, so the
number of buckets is bounded by the number of keys, not by what clients send.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """A token bucket per name: `per_second` tokens added each second, at most `burst` held.

    Args:
        per_second: the sustained rate; 0 turns limiting off.
        burst: the most requests let through at once after a quiet spell (at least 1).
        clock: monotonic seconds (tests pass their own).
    """

    per_second: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        if self.per_second < 0:
            raise ValueError(f"per_second: must be 0 (off) or positive, got {self.per_second}")
        self.burst = max(1.0, float(self.burst))

    @property
    def enabled(self) -> bool:
        return self.per_second > 0

    def acquire(self, name: str) -> float:
        """Take one token from `name`'s bucket.

        Returns:
            0.0 when the request may go ahead, else the seconds until a token is back
            (what `Retry-After` should say).
        """
        if not self.enabled:
            return 0.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = _Bucket(tokens=self.burst, updated=now)
            bucket.tokens = min(self.burst,
                                bucket.tokens + (now - bucket.updated) * self.per_second)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.per_second


def retry_after_header(wait_seconds: float) -> str:
    """`Retry-After` in whole seconds (at least 1: HTTP has no fractions here)."""
    return str(max(1, math.ceil(wait_seconds)))
