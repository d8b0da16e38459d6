"""The `locker-down:<store>` alert: a store's locker failing for longer than a while.

A locker that misses a few deliveries heals by itself and nobody needs a mail; one
whose breaker stays open past the threshold needs a person. `LockerWatch` looks at
the lanes every second, raises the store's alert once the breaker has been open for
``threshold_s`` and clears it (the recovery mail) when the store delivers again. A
store whose partitions moved to another process is forgotten, not cleared: that
process sees the same locker and carries the alert on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from redis.exceptions import RedisError

from consumers.alerts import locker_down_key
from lockerlink.alerts import Alert, Alerter

log = logging.getLogger(__name__)

HeldByStore = Callable[[], Mapping[str, bool]]
"""Each store this process delivers, and whether its breaker is open."""


class LockerWatch:
    """Turns long-open breakers into one mail per store and one when it heals."""

    def __init__(
        self,
        held: HeldByStore,
        alerter: Alerter,
        threshold_s: float,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._held = held
        self.alerter = alerter
        self.threshold_s = threshold_s
        self.interval_s = interval_s
        self._clock = clock
        self._held_since: dict[str, float] = {}

    async def run(self) -> None:
        """Check every ``interval_s`` until cancelled; Redis trouble skips a round."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except (RedisError, OSError) as exc:
                log.warning("locker alerts not updated: %s", exc)

    async def check(self) -> None:
        now = self._clock()
        stores = dict(self._held())
        for store_id, since in list(self._held_since.items()):
            if store_id not in stores:
                del self._held_since[store_id]
            elif not stores[store_id]:
                del self._held_since[store_id]
                await self.alerter.clear_alert(
                    locker_down_key(store_id),
                    f"Store {store_id}'s locker takes deliveries again.",
                )
            elif now - since >= self.threshold_s:
                await self._raise(store_id, now - since)
        for store_id, held in stores.items():
            if held and store_id not in self._held_since:
                self._held_since[store_id] = now
                if self.threshold_s <= 0:
                    await self._raise(store_id, 0.0)

    async def _raise(self, store_id: str, failing_s: float) -> None:
        # Raising is idempotent (the state is in Redis): only the first mails.
        await self.alerter.raise_alert(
            Alert(
                locker_down_key(store_id),
                f"Store {store_id}: locker unreachable",
                f"Deliveries to store {store_id} have failed for {failing_s:.0f} s. "
                "They wait in order and resume by themselves once the locker "
                "answers again.",
            )
        )
