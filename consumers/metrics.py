"""Prometheus metrics of delivery, served at its /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Enum, Gauge, Histogram

from lockerlink.status import LATENCY_BUCKETS_MS

DELIVERED = Counter(
    "lockerlink_delivery_delivered_total",
    "Events a store's locker acknowledged.",
    ["store"],
)
DEAD_LETTERS = Counter(
    "lockerlink_delivery_dead_letters_total",
    "Events delivery set aside on the dead-letter topic.",
    ["store"],
)
LAG = Gauge(
    "lockerlink_delivery_lag_events",
    "Events on a store's partitions not yet settled (delivered or set aside).",
    ["store"],
)
BREAKER_STATES = ("closed", "half_open", "open")
BREAKER = Enum(
    "lockerlink_delivery_breaker_state",
    "State of a store's locker breaker.",
    ["store"],
    states=list(BREAKER_STATES),
)
END_TO_END = Histogram(
    "lockerlink_delivery_end_to_end_seconds",
    "Time from the order's Clover modifiedTime to the locker's acknowledgement.",
    buckets=[ms / 1000 for ms in LATENCY_BUCKETS_MS],
)


def breaker_changed(store_id: str, state: str) -> None:
    """Show a store's breaker state; a state this metric does not know is skipped."""
    if state in BREAKER_STATES:
        BREAKER.labels(store_id).state(state)
