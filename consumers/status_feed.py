"""Delivery's facts for the status page and /metrics, off the delivery path.

Lanes report each acknowledgement, breaker change, dead letter and lag here without
waiting. The Prometheus metrics are updated at once, in memory; one task writes the
facts to the `StatusBoard` in Redis. If Redis is slow or away, reports queue up to
a limit and the rest are dropped (and counted): the status page may lag, deliveries
never do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from consumers import metrics
from lockerlink.status import StatusBoard

log = logging.getLogger(__name__)

Report = Callable[[StatusBoard], Awaitable[None]]


class StatusFeed:
    """A bounded queue of status reports and the task that writes them."""

    def __init__(self, board: StatusBoard, queue_limit: int = 10_000) -> None:
        self.board = board
        self._queue: asyncio.Queue[Report] = asyncio.Queue(maxsize=queue_limit)
        self.dropped = 0
        self.failed = 0

    def _put(self, report: Report) -> None:
        try:
            self._queue.put_nowait(report)
        except asyncio.QueueFull:
            self.dropped += 1

    def delivered(self, store_id: str, order_version_ms: int) -> None:
        """One acknowledged event; latency is measured from the order's Clover time."""
        latency_ms = max(0.0, time.time() * 1000 - order_version_ms)
        metrics.DELIVERED.labels(store_id).inc()
        metrics.END_TO_END.observe(latency_ms / 1000)
        self._put(lambda board: board.record_delivery(store_id, latency_ms))

    def breaker(self, store_id: str, state: str) -> None:
        metrics.breaker_changed(store_id, state)
        self._put(lambda board: board.record_breaker(store_id, state))

    def dead_letter(self, store_id: str) -> None:
        metrics.DEAD_LETTERS.labels(store_id).inc()
        self._put(lambda board: board.record_dead_letter(store_id))

    def lag(self, store_id: str, events: int) -> None:
        metrics.LAG.labels(store_id).set(events)
        self._put(lambda board: board.record_lag(store_id, events))

    async def run(self) -> None:
        """Write reports until cancelled; a Redis failure costs that report only."""
        while True:
            report = await self._queue.get()
            try:
                await report(self.board)
            except (RedisError, OSError) as exc:
                self.failed += 1
                if self.failed == 1 or self.failed % 1000 == 0:
                    log.warning("status board not written: %s", exc)

    async def drain(self) -> None:
        """Write what is queued now (for shutdown and tests)."""
        while not self._queue.empty():
            report = self._queue.get_nowait()
            try:
                await report(self.board)
            except (RedisError, OSError):
                self.failed += 1
