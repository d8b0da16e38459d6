"""A per-store circuit breaker: after failures in a row, only probes reach a locker."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from consumers.backoff import Backoff


class BreakerState(StrEnum):
    """Closed: events flow. Open: waiting before the next probe. Half open: a
    probe is out; its answer closes the breaker or opens it again."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Closed while the locker answers; open after ``failures_to_open`` failures.

    While open, the store's partitions stay paused and the head event is tried again
    only after a growing, jittered wait: that single try is the probe, made in the
    half-open state. A successful probe closes the breaker, a failed one opens it
    again.
    """

    failures_to_open: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    failures: int = 0
    state: BreakerState = BreakerState.CLOSED

    @property
    def is_open(self) -> bool:
        """True while the store is held: open, or half open with a probe out."""
        return self.state is not BreakerState.CLOSED

    def begin_probe(self) -> bool:
        """Before a try: an open breaker goes half open; True when it did."""
        if self.state is BreakerState.OPEN:
            self.state = BreakerState.HALF_OPEN
            return True
        return False

    def record_failure(self) -> bool:
        """Count a failure; True when this failure opened a closed breaker.

        A failed probe sends a half-open breaker back to open (False: it was
        already holding the store).
        """
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN:
            self.state = BreakerState.OPEN
            return False
        if self.state is BreakerState.CLOSED and self.failures >= self.failures_to_open:
            self.state = BreakerState.OPEN
            return True
        return False

    def trip(self) -> bool:
        """Open now, whatever the count; True when it was closed."""
        was_closed = not self.is_open
        self.failures = max(self.failures, 1)
        self.state = BreakerState.OPEN
        return was_closed

    def record_success(self) -> bool:
        """Reset after a success; True when the breaker was holding the store."""
        was_open = self.is_open
        self.failures = 0
        self.state = BreakerState.CLOSED
        return was_open

    def wait_s(self, *, at_least_s: float = 0.0) -> float:
        """How long to wait before the next try (a retry, or a probe when open)."""
        return self.backoff.delay_s(self.failures, at_least_s=at_least_s)
