"""Each merchant's polling cursor in Redis, moved only by the lease holder.

The cursor is the ``modifiedTime`` (epoch ms) from which the next poll reads, less a
lookback overlap. It is written only after Kafka acknowledged every record the poll
covered, and only by the process that still holds the merchant's lease, so a
poller that lost its lease while paused can never move it.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lockerlink.keys import KeySpace
from lockerlink.redis_store import RedisUnavailable

# KEYS: cursor, lease; ARGV: new cursor ms, lease owner.
# Returns 1 when moved, 0 when kept (never moves back), -1 when the lease is lost.
_ADVANCE = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return -1 end
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


class LeaseLost(RedisUnavailable):
    """This process no longer holds the merchant's lease; another one polls it."""

    retriable = False


class CursorStore:
    """Reads and advances poll cursors."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._keys = keys
        self._advance = redis.register_script(_ADVANCE)

    async def get(self, merchant_id: str) -> int | None:
        """The cursor in epoch ms, or None for a merchant never polled."""
        try:
            raw = await self._redis.get(self._keys.poll_cursor(merchant_id))
        except RedisError as exc:
            raise RedisUnavailable(f"cannot read poll cursor: {exc}") from exc
        return None if raw is None else int(raw)

    async def advance(self, merchant_id: str, cursor_ms: int, owner: str) -> bool:
        """Move the cursor forward (never back); False when it already was further."""
        keys = [
            self._keys.poll_cursor(merchant_id),
            self._keys.merchant_lease(merchant_id),
        ]
        try:
            moved = int(await self._advance(keys=keys, args=[cursor_ms, owner]))
        except RedisError as exc:
            raise RedisUnavailable(f"cannot move poll cursor: {exc}") from exc
        if moved < 0:
            raise LeaseLost(
                f"lease of merchant {merchant_id} is held by another poller"
            )
        return moved == 1
