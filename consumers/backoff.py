"""Exponential backoff with full jitter, so many stores retrying never beat in step."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delays that double per attempt up to a cap, each drawn uniformly below it."""

    base_s: float = 0.2
    max_s: float = 30.0
    # The longest wait a peer's Retry-After gets: a locker asking for a day is
    # asked again after this (the breaker keeps its store paused meanwhile).
    honoured_max_s: float = 300.0

    def ceiling_s(self, attempt: int) -> float:
        """The largest delay before retry number ``attempt`` (1 = first retry)."""
        return float(min(self.max_s, self.base_s * 2 ** max(0, attempt - 1)))

    def delay_s(self, attempt: int, *, at_least_s: float = 0.0) -> float:
        """A jittered delay before retry ``attempt``, never below ``at_least_s``
        (a peer's Retry-After, honoured up to `honoured_max_s`)."""
        jittered = random.uniform(0, self.ceiling_s(attempt))  # noqa: S311 - jitter
        return max(min(at_least_s, self.honoured_max_s), jittered)
