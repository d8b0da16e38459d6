"""When each merchant is refreshed next: a Redis sorted set of due times.

A merchant is due at its access-token expiry minus the margin minus a random part
of the spread window, so tokens never expire in use and merchants connected
together drift apart instead of refreshing in the same minute. Any process may run
the scheduler: a due merchant is claimed (its score pushed past the lock lease) in
one Lua step, so two schedulers do not pick the same merchant at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from lockerlink.keys import KeySpace
from lockerlink.settings import Settings

_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, merchant in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], merchant)
end
return due
"""


class RefreshSchedule:
    """Plans, claims and drops proactive refreshes."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keyspace: KeySpace,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._key = keyspace.refresh_schedule()
        self._margin_ms = int(settings.token_refresh_margin_s * 1000)
        self._spread_ms = int(settings.token_refresh_spread_s * 1000)
        self._claim_ms = int(settings.token_refresh_lease_s * 1000)
        self._clock = clock
        self._claim = redis.register_script(_CLAIM)

    def due_at_ms(self, expires_at_ms: int) -> int:
        """A random moment in the refresh window of a token expiring then."""
        now_ms = self._now_ms()
        window_end = expires_at_ms - self._margin_ms
        usable_ms = max(0, window_end - now_ms)
        spread_ms = min(self._spread_ms, usable_ms // 2)
        due = window_end - random.randint(0, spread_ms)  # noqa: S311 - spreading only
        return max(now_ms, due)

    def in_window(self, expires_at_ms: int) -> bool:
        """True if a token expiring then is close enough to expiry to refresh."""
        return expires_at_ms - self._now_ms() <= self._margin_ms + self._spread_ms

    async def plan(self, merchant_id: str, expires_at_ms: int) -> int:
        due = self.due_at_ms(expires_at_ms)
        await self.plan_at(merchant_id, due)
        return due

    async def plan_at(self, merchant_id: str, due_at_ms: int) -> None:
        await self._redis.zadd(self._key, {merchant_id: due_at_ms})

    async def drop(self, merchant_id: str) -> None:
        await self._redis.zrem(self._key, merchant_id)

    async def claim_due(self, limit: int) -> list[str]:
        """Merchants due now, each claimed for one lock lease."""
        now_ms = self._now_ms()
        due = await self._claim(
            keys=[self._key], args=[now_ms, now_ms + self._claim_ms, limit]
        )
        return [m.decode() if isinstance(m, bytes) else str(m) for m in due]

    async def next_due_ms(self) -> int | None:
        first = await self._redis.zrange(self._key, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
