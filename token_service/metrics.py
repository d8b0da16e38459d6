"""Prometheus metrics of the token service, served at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from lockerlink.metric_clocks import ClockGauge

ROTATIONS = Counter(
    "lockerlink_token_rotations_total",
    "Token pairs written to the vault, by reason.",
    ["reason"],
)
REFRESH_FAILURES = Counter(
    "lockerlink_token_refresh_failures_total",
    "Clover refresh calls that failed, by kind (transient or permanent).",
    ["kind"],
)
EVENTS_LOST = Counter(
    "lockerlink_token_rotation_events_failed_total",
    "Rotation event publishes that failed (the event stays in the outbox and is "
    "retried).",
)
REQUESTS = Counter(
    "lockerlink_token_service_requests_total",
    "HTTP requests answered, by route and status.",
    ["route", "status"],
)
REQUEST_SECONDS = Histogram(
    "lockerlink_token_service_request_seconds",
    "Time to answer an HTTP request, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)
RATE_LIMITED = Counter(
    "lockerlink_token_service_rate_limited_total",
    "Requests refused by a rate limit, by scope.",
    ["scope"],
)
EXCHANGES = Counter(
    "lockerlink_token_exchanges_total",
    "Calls to Clover's token endpoints (token = code exchange, refresh, recovery), "
    "by outcome: ok, transient (retried) or permanent (re-authorization needed).",
    ["endpoint", "outcome"],
)
ACCESS_EXPIRY = ClockGauge(
    "lockerlink_token_access_expiry_seconds",
    "Seconds until the merchant's access token expires, as this process last "
    "stored or served it (negative: expired).",
    "merchant",
    since=False,
)
