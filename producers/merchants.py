"""Which merchants the poller polls: those connected in the token service's vault.

The vault's merchant index (in Redis) lists every merchant that authorized the app.
A merchant whose authorization is dead (``reauth_required``) has no token to poll
with and is left out until it connects again; its first poll then backfills. The
store registry is not consulted: a merchant missing there still gets its orders
into the raw topic, where the stream dead-letters them with the reason.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lockerlink.keys import KeySpace
from lockerlink.redis_store import RedisUnavailable
from schemas.token_rotation import MerchantState

_DEAD = MerchantState.REAUTH_REQUIRED.value.encode()


class ConnectedMerchants:
    """An async source of merchant ids, read from the vault's merchant index.

    Reads the index and each merchant's state in two round trips, however many
    merchants there are (the vault's own reader makes one per merchant).
    """

    def __init__(self, redis: aioredis.Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._keys = keys

    async def __call__(self) -> frozenset[str]:
        try:
            members = await self._redis.smembers(self._keys.merchants_index())
            ids = sorted(
                m.decode() if isinstance(m, bytes) else str(m) for m in members
            )
            pipe = self._redis.pipeline(transaction=False)
            for merchant_id in ids:
                pipe.hget(self._keys.merchant(merchant_id), "state")
            states = await pipe.execute()
        except RedisError as exc:
            raise RedisUnavailable(f"cannot read connected merchants: {exc}") from exc
        return frozenset(
            merchant_id
            for merchant_id, state in zip(ids, states, strict=True)
            if state is not None and state != _DEAD
        )
