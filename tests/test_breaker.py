"""The per-store circuit breaker's states: closed, open, half open."""

from __future__ import annotations

from consumers.breaker import BreakerState, CircuitBreaker


def test_failures_open_a_probe_half_opens_and_its_answer_decides() -> None:
    breaker = CircuitBreaker(failures_to_open=2)
    assert not breaker.begin_probe()  # closed: a plain try, not a probe
    assert breaker.record_failure() is False
    assert breaker.record_failure() is True
    assert breaker.state is BreakerState.OPEN and breaker.is_open

    assert breaker.begin_probe() is True
    assert breaker.state is BreakerState.HALF_OPEN and breaker.is_open
    assert breaker.record_failure() is False  # already holding the store
    assert breaker.state is BreakerState.OPEN

    assert breaker.begin_probe() is True
    assert breaker.record_success() is True
    assert breaker.state is BreakerState.CLOSED and not breaker.is_open
    assert breaker.failures == 0


def test_a_trip_opens_at_once_even_while_half_open() -> None:
    breaker = CircuitBreaker(failures_to_open=3)
    assert breaker.trip() is True
    breaker.begin_probe()
    assert breaker.trip() is False
    assert breaker.state is BreakerState.OPEN
