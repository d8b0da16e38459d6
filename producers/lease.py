"""Merchant leases in Redis: which poller process polls which merchant.

Each process announces itself in a members set with a heartbeat and aims to hold
its fair share (all merchants / live members, rounded up) of merchant leases. A
lease is a key holding the owner's id with an expiry; only the owner renews or
releases it, so no merchant is ever polled by two processes, and a process that
dies leaves its leases to expire into other hands.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lockerlink.keys import KeySpace
from lockerlink.redis_store import RedisUnavailable

# KEYS: leases; ARGV: owner, ttl ms. Returns, per key, 1 when renewed, 0 when lost.
_RENEW = """
local kept = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    kept[i] = 1
  else
    kept[i] = 0
  end
end
return kept
"""

# KEYS: leases; ARGV: owner. Deletes the leases this owner still holds.
_RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""

# KEYS: members set; ARGV: owner, ttl ms. Returns the number of live members.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


def fair_share(merchants: int, members: int) -> int:
    """How many merchants one of ``members`` processes should hold."""
    return math.ceil(merchants / max(1, members))


def preference(owner: str, merchants: Collection[str]) -> list[str]:
    """This owner's own order of merchants, so processes do not all race for one."""
    return sorted(
        merchants, key=lambda m: hashlib.blake2b(f"{owner}|{m}".encode()).digest()
    )


class LeaseTable:
    """Heartbeat, acquire, renew and release of one process's merchant leases."""

    def __init__(
        self, redis: aioredis.Redis, keys: KeySpace, owner: str, ttl_s: float
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.owner = owner
        self._ttl_ms = int(ttl_s * 1000)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._heartbeat = redis.register_script(_HEARTBEAT)

    async def heartbeat(self) -> int:
        """Announce this process; returns how many pollers are alive."""
        try:
            count = await self._heartbeat(
                keys=[self._keys.poller_members()], args=[self.owner, self._ttl_ms]
            )
        except RedisError as exc:
            raise RedisUnavailable(f"cannot announce poller: {exc}") from exc
        return int(count)

    async def leave(self) -> None:
        try:
            await self._redis.zrem(self._keys.poller_members(), self.owner)
        except RedisError as exc:
            raise RedisUnavailable(f"cannot withdraw poller: {exc}") from exc

    async def unheld(self, merchant_ids: Collection[str]) -> list[str]:
        """The merchants among ``merchant_ids`` whose lease nobody holds."""
        ordered = list(merchant_ids)
        if not ordered:
            return []
        try:
            holders = await self._redis.mget(
                [self._keys.merchant_lease(m) for m in ordered]
            )
        except RedisError as exc:
            raise RedisUnavailable(f"cannot read merchant leases: {exc}") from exc
        return [m for m, holder in zip(ordered, holders, strict=True) if holder is None]

    async def acquire(self, merchant_ids: Sequence[str]) -> list[str]:
        """Take the free leases among ``merchant_ids``; returns those taken."""
        if not merchant_ids:
            return []
        try:
            pipe = self._redis.pipeline(transaction=False)
            for merchant_id in merchant_ids:
                pipe.set(
                    self._keys.merchant_lease(merchant_id),
                    self.owner,
                    nx=True,
                    px=self._ttl_ms,
                )
            taken = await pipe.execute()
        except RedisError as exc:
            raise RedisUnavailable(f"cannot take merchant leases: {exc}") from exc
        return [m for m, ok in zip(merchant_ids, taken, strict=True) if ok]

    async def renew(self, merchant_ids: Sequence[str]) -> list[str]:
        """Extend the leases still ours; returns the merchants whose lease was lost."""
        if not merchant_ids:
            return []
        keys = [self._keys.merchant_lease(m) for m in merchant_ids]
        try:
            kept = await self._renew(keys=keys, args=[self.owner, self._ttl_ms])
        except RedisError as exc:
            raise RedisUnavailable(f"cannot renew merchant leases: {exc}") from exc
        return [m for m, ok in zip(merchant_ids, kept, strict=True) if not int(ok)]

    async def release(self, merchant_ids: Sequence[str]) -> None:
        """Give leases back at once, so another process can take them now."""
        if not merchant_ids:
            return
        keys = [self._keys.merchant_lease(m) for m in merchant_ids]
        try:
            await self._release(keys=keys, args=[self.owner])
        except RedisError as exc:
            raise RedisUnavailable(f"cannot release merchant leases: {exc}") from exc
