"""Clover's rate limits: requests per second and concurrent requests, per token
and across all tokens of the app.

Over a limit the answer is 429 with a header naming the limit (its value is the
limit) and ``retry-after`` in seconds. Refused requests still count against the
per-second window by default, so retrying early makes the wait longer.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.clover_rejection import Rejection

WINDOW_S = 1.0


@dataclass
class RateLimits:
    """The four limits; ``None`` lifts one. Defaults are Clover's published ones."""

    token_per_s: int | None = 16
    token_concurrent: int | None = 5
    app_per_s: int | None = 50
    app_concurrent: int | None = 10
    refused_requests_count: bool = True

    @classmethod
    def lifted(cls) -> RateLimits:
        """No limits at all, for benchmarks."""
        return cls(None, None, None, None)


class LimitExceeded(Rejection):
    """A 429 naming the limit that was hit."""

    def __init__(self, header: str, limit: int, retry_after_s: int) -> None:
        super().__init__(
            f"Too many requests ({header} {limit})",
            status=429,
            outcome="rate_limited",
            headers={header: str(limit), "Retry-After": str(retry_after_s)},
        )


class _Window:
    """Arrival times within the last second."""

    def __init__(self) -> None:
        self.arrivals: deque[float] = deque()

    def idle_since(self, since_s: float) -> bool:
        """No arrival after ``since_s``."""
        return not self.arrivals or self.arrivals[-1] <= since_s

    def admit(self, now_s: float, limit: int | None, count_refused: bool) -> int:
        """Record an arrival; 0 if admitted, else seconds until one would be."""
        while self.arrivals and self.arrivals[0] <= now_s - WINDOW_S:
            self.arrivals.popleft()
        if limit is None or len(self.arrivals) < limit:
            self.arrivals.append(now_s)
            return 0
        wait_s = self.arrivals[-limit] + WINDOW_S - now_s
        if count_refused:
            self.arrivals.append(now_s)
        return max(1, math.ceil(wait_s))


class RateLimiter:
    """Admits or refuses REST calls; use ``enter`` then ``leave`` around each."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._app_window = _Window()
        self._token_windows: dict[str, _Window] = {}
        self._app_in_flight = 0
        self._token_in_flight: dict[str, int] = {}
        self._swept_at_s = float("-inf")

    def enter(self, token_key: str) -> None:
        """Admit one call for a token, or raise ``LimitExceeded``."""
        limits = self.limits
        in_flight = self._token_in_flight.get(token_key, 0)
        if limits.token_concurrent is not None and in_flight >= limits.token_concurrent:
            raise LimitExceeded(
                "X-RateLimit-tokenConcurrentLimit", limits.token_concurrent, 1
            )
        if limits.app_concurrent is not None and (
            self._app_in_flight >= limits.app_concurrent
        ):
            raise LimitExceeded(
                "X-RateLimit-crossTokenConcurrentLimit", limits.app_concurrent, 1
            )
        self._admit_rate(token_key)
        self._token_in_flight[token_key] = in_flight + 1
        self._app_in_flight += 1

    def leave(self, token_key: str) -> None:
        """The call admitted by ``enter`` has finished."""
        self._app_in_flight -= 1
        left = self._token_in_flight.get(token_key, 1) - 1
        if left:
            self._token_in_flight[token_key] = left
            return
        self._token_in_flight.pop(token_key, None)

    def tracked_tokens(self) -> int:
        """How many tokens the limiter holds state for."""
        return len(self._token_windows)

    def in_flight(self, token_key: str | None = None) -> int:
        """Calls running now, for one token or for the whole app."""
        if token_key is None:
            return self._app_in_flight
        return self._token_in_flight.get(token_key, 0)

    def _forget_idle_tokens(self, now_s: float) -> None:
        """Drop windows of tokens idle for a whole window, at most once a window.

        Access tokens rotate every few minutes; without this the limiter would
        keep every token it ever saw.
        """
        if now_s - self._swept_at_s < WINDOW_S:
            return
        self._swept_at_s = now_s
        idle = [
            key
            for key, window in self._token_windows.items()
            if window.idle_since(now_s - WINDOW_S) and key not in self._token_in_flight
        ]
        for key in idle:
            del self._token_windows[key]

    def _admit_rate(self, token_key: str) -> None:
        now_s = self._clock()
        self._forget_idle_tokens(now_s)
        limits = self.limits
        counted = limits.refused_requests_count
        window = self._token_windows.setdefault(token_key, _Window())
        wait_s = window.admit(now_s, limits.token_per_s, counted)
        if wait_s and limits.token_per_s is not None:
            raise LimitExceeded("X-RateLimit-tokenLimit", limits.token_per_s, wait_s)
        wait_s = self._app_window.admit(now_s, limits.app_per_s, counted)
        if wait_s and limits.app_per_s is not None:
            raise LimitExceeded("X-RateLimit-crossTokenLimit", limits.app_per_s, wait_s)
