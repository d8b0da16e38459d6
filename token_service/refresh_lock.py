"""The per-merchant refresh lock shared by every token-service process.

A lock is a Redis string holding a random owner token, set only if absent and with a
lease. Only the owner can release it (compare-and-delete in Lua), so a process whose
lease ran out can never release the lock of the process that took over.
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

from lockerlink.keys import KeySpace

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RefreshLock:
    """Take and release the refresh lock of one merchant at a time."""

    def __init__(
        self, redis: aioredis.Redis, keyspace: KeySpace, lease_s: float
    ) -> None:
        self._redis = redis
        self._keyspace = keyspace
        self.lease_ms = int(lease_s * 1000)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, merchant_id: str) -> str | None:
        """The owner token if this caller now holds the lock, else None."""
        owner = secrets.token_hex(16)
        taken = await self._redis.set(
            self._keyspace.refresh_lock(merchant_id), owner, nx=True, px=self.lease_ms
        )
        return owner if taken else None

    async def release(self, merchant_id: str, owner: str) -> bool:
        """Release the lock if ``owner`` still holds it; True when released."""
        released = await self._release(
            keys=[self._keyspace.refresh_lock(merchant_id)], args=[owner]
        )
        return bool(released)

    async def is_held(self, merchant_id: str) -> bool:
        return bool(await self._redis.exists(self._keyspace.refresh_lock(merchant_id)))
