"""Orders named by Clover webhooks, waiting in Redis for their merchant's poller.

Any poller process may receive a webhook; the one holding the merchant's lease
fetches the orders. The ids wait in a sorted set per merchant (score = when the
last notice for that order arrived), and a message on a wake channel tells the
owner at once. Ids stay until fetched and published, so a poller dying in between
loses nothing; notices for the same order fold into one entry, so a burst of
UPDATEs becomes one fetch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lockerlink.keys import KeySpace
from lockerlink.redis_store import RedisUnavailable

# KEYS: the pending set; ARGV: member, score, member, score, ...
# Removes each member only if no newer notice arrived since it was taken.
_DONE = """
local removed = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[i + 1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed
"""


class WebhookInbox:
    """Pending webhook-named orders per merchant, and the wake-up channel."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._keys = keys
        self._done = redis.register_script(_DONE)
        self.channel = keys.poller_wake_channel()

    async def add(self, notices: Mapping[str, Iterable[str]]) -> None:
        """Queue order ids per merchant and wake each merchant's owner."""
        now_ms = time.time() * 1000
        try:
            pipe = self._redis.pipeline(transaction=False)
            for merchant_id, order_ids in notices.items():
                scores = dict.fromkeys(order_ids, now_ms)
                if not scores:
                    continue
                pipe.zadd(self._keys.webhook_pending(merchant_id), scores, gt=True)
                pipe.publish(self.channel, merchant_id)
            await pipe.execute()
        except RedisError as exc:
            raise RedisUnavailable(f"cannot queue webhook notices: {exc}") from exc

    async def take(self, merchant_id: str) -> dict[str, float]:
        """The pending order ids of a merchant with their scores; they stay queued."""
        key = self._keys.webhook_pending(merchant_id)
        try:
            pairs = cast(
                list[tuple[bytes, float]],
                await self._redis.zrange(key, 0, -1, withscores=True),
            )
        except RedisError as exc:
            raise RedisUnavailable(f"cannot read webhook notices: {exc}") from exc
        taken: dict[str, float] = {}
        for member, score in pairs:
            taken[member.decode()] = float(score)
        return taken

    async def done(self, merchant_id: str, taken: Mapping[str, float]) -> None:
        """Drop handled ids, except those a newer notice named again meanwhile."""
        if not taken:
            return
        args: list[str | float] = []
        for order_id, score in taken.items():
            args += [order_id, score]
        key = self._keys.webhook_pending(merchant_id)
        try:
            await self._done(keys=[key], args=args)
        except RedisError as exc:
            raise RedisUnavailable(f"cannot clear webhook notices: {exc}") from exc
