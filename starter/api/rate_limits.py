"""Counting attempts per client in a sliding window: failed sign-ins and API keys, hosted
form fills. In memory, per API process: each replica counts its own (a client spread over
N replicas gets up to N times the limit), which still turns thousands of guesses a second
into a handful a minute."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class AttemptLimiter:
    """At most `limit` attempts per key in any `window` seconds."""

    limit: int
    window: float
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 100_000  # bounded: a flood of distinct keys can't grow it without end
    _attempts: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, key: str) -> int | None:
        """Seconds until `key` may try again, or None while it is under the limit."""
        attempts = self._recent(key)
        if attempts is None or len(attempts) < self.limit:
            return None
        return max(1, math.ceil(attempts[0] + self.window - self.clock()))

    def record(self, key: str) -> None:
        """Count one attempt of `key`."""
        attempts = self._recent(key)
        if attempts is None:
            if len(self._attempts) >= self.max_keys:
                self._attempts.pop(next(iter(self._attempts)))  # the oldest key
            attempts = self._attempts[key] = deque()
        attempts.append(self.clock())

    def _recent(self, key: str) -> deque[float] | None:
        attempts = self._attempts.get(key)
        if attempts is None:
            return None
        horizon = self.clock() - self.window
        while attempts and attempts[0] <= horizon:
            attempts.popleft()
        if not attempts:
            del self._attempts[key]
            return None
        return attempts
