"""Prometheus metrics of the poller, served at its /metrics."""

from __future__ import annotations

from prometheus_client import Counter

from lockerlink.metric_clocks import ClockGauge

POLL_LAG = ClockGauge(
    "lockerlink_poller_poll_lag_seconds",
    "Seconds since the start of the merchant's last successful poll: every Clover "
    "change before it is published.",
    "merchant",
    since=True,
)
RATE_LIMITED = Counter(
    "lockerlink_poller_clover_rate_limited_total",
    "Clover answers 429, by the scope of the limit (app or merchant).",
    ["scope"],
)
