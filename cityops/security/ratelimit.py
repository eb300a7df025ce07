"""In-process token buckets for login and public intake.

One limiter per application instance (``setup_app`` installs it and the middleware makes it
current for each request), so several apps in one process (tests) do not share buckets; code
outside a request uses a process-wide default. Behind several API processes each process
limits on its own (the effective limit is N x per_minute): keep the front proxy's limit too.
"""

from __future__ import annotations

import contextvars
import threading
import time

from cityops.errors import Problem, TooManyRequests


class RateLimiter:
    def __init__(self, max_keys: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last monotonic time)
        self.max_keys = max_keys

    def allow(self, key: str, per_minute: float, cost: float = 1.0) -> tuple[bool, float]:
        """Take ``cost`` tokens from the bucket ``key`` (capacity ``per_minute``, refilled
        continuously). Returns (allowed, seconds until a token is available)."""
        if per_minute <= 0:
            return True, 0.0
        rate = per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - last) * rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return True, 0.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self.max_keys:  # forget the fullest buckets first
                for k in [k for k, (t, _) in self._buckets.items() if t >= per_minute - 1][: self.max_keys // 10]:
                    self._buckets.pop(k, None)
            return False, (cost - tokens) / rate

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


DEFAULT = RateLimiter()
current: contextvars.ContextVar[RateLimiter | None] = contextvars.ContextVar("cityops_rate_limiter", default=None)


def limiter() -> RateLimiter:
    return current.get() or DEFAULT


def check_rate(key: str, per_minute: float, *, what: str = "requests") -> None:
    """Raise ``TooManyRequests`` (429, with Retry-After) when ``key`` exceeded ``per_minute``."""
    ok, wait = limiter().allow(key, per_minute)
    if not ok:
        exc = TooManyRequests([Problem(f"请求过于频繁，请 {int(wait) + 1} 秒后重试 too many {what}; retry in "
                                       f"{int(wait) + 1} s", ["rate_limit"], "rate_limited")])
        exc.headers = {"Retry-After": str(int(wait) + 1)}  # type: ignore[attr-defined]
        raise exc
