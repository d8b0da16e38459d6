"""A record of every call the Clover sandbox answered, for tests and benchmarks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from aiohttp import web

# Set by handlers so the call log can name the merchant and a finer outcome.
MERCHANT_KEY = web.RequestKey("merchant_id", str)
OUTCOME_KEY = web.RequestKey("outcome", str)


@dataclass(frozen=True)
class Call:
    """One answered request: which endpoint, how it ended, for which merchant."""

    endpoint: str
    outcome: str
    merchant_id: str | None


class CallLog:
    """Counts calls by endpoint, outcome and merchant.

    Endpoints are route names such as ``refresh`` or ``orders.list``; outcomes are
    ``ok``, ``bad_request``, ``unauthorized``, ``not_found``, ``rate_limited``,
    ``error``, or a finer word a handler chose (``reused`` for a refresh token
    presented after it was spent).
    """

    def __init__(self) -> None:
        self._counts: Counter[Call] = Counter()

    def record(self, endpoint: str, outcome: str, merchant_id: str | None) -> None:
        self._counts[Call(endpoint, outcome, merchant_id)] += 1

    def count(
        self,
        endpoint: str | None = None,
        *,
        outcome: str | None = None,
        merchant_id: str | None = None,
    ) -> int:
        """How many calls matched every criterion given (None matches anything)."""
        return sum(
            n
            for call, n in self._counts.items()
            if (endpoint is None or call.endpoint == endpoint)
            and (outcome is None or call.outcome == outcome)
            and (merchant_id is None or call.merchant_id == merchant_id)
        )

    def snapshot(self) -> dict[Call, int]:
        """Every distinct call and how often it happened."""
        return dict(self._counts)

    def clear(self) -> None:
        self._counts.clear()
