"""The per-store circuit breaker's states: closed, open, half open."""

from __future__ import annotations

from consumers.breaker import BreakerState, CircuitBreaker


def _state(breaker: CircuitBreaker) -> BreakerState:
    """The state now (a call, so mypy does not carry an earlier check over)."""
    return breaker.state


def test_failures_open_a_probe_half_opens_and_its_answer_decides() -> None:
    breaker = CircuitBreaker(failures_to_open=2)
    assert not breaker.begin_probe()  # closed: a plain try, not a probe
    assert breaker.record_failure() is False
    assert breaker.record_failure() is True
    assert _state(breaker) is BreakerState.OPEN and breaker.is_open

    assert breaker.begin_probe() is True
    assert _state(breaker) is BreakerState.HALF_OPEN and breaker.is_open
    assert breaker.record_failure() is False  # already holding the store
    assert _state(breaker) is BreakerState.OPEN

    assert breaker.begin_probe() is True
    assert breaker.record_success() is True
    assert _state(breaker) is BreakerState.CLOSED and not breaker.is_open
    assert breaker.failures == 0


def test_a_trip_opens_at_once_even_while_half_open() -> None:
    breaker = CircuitBreaker(failures_to_open=3)
    assert breaker.trip() is True
    breaker.begin_probe()
    assert breaker.trip() is False
    assert _state(breaker) is BreakerState.OPEN
