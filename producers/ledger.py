"""Which order versions were already published, per merchant, for a bounded time.

One sorted set per merchant: member = order id, score = the newest ``modifiedTime``
published for it, or `DELETED_BASE` plus the deletion time once its delete record
went out. A version is new when its ``modifiedTime`` is above the score; a delete
is new when no delete was recorded. Entries older than the retention are trimmed;
the poll overlap is far shorter than the retention, so a trimmed order cannot come
back through it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lockerlink.keys import KeySpace
from lockerlink.redis_store import RedisUnavailable

DELETED_BASE = float(2**52)
"""Scores from here up mark deleted orders; far above any modifiedTime in ms."""


def delete_version(deleted_at_ms: int) -> float:
    """The ledger version of a delete record made at ``deleted_at_ms``."""
    return DELETED_BASE + deleted_at_ms


def _is_new(version: float, score: float | None) -> bool:
    if score is None:
        return True
    if version >= DELETED_BASE:
        return score < DELETED_BASE
    return version > score


class PublishedLedger:
    """Remembers published (order id, modifiedTime) pairs."""

    def __init__(
        self, redis: aioredis.Redis, keys: KeySpace, retention_s: float
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._retention_ms = int(retention_s * 1000)

    async def unpublished(
        self, merchant_id: str, versions: Sequence[tuple[str, float]]
    ) -> list[bool]:
        """For each (order id, version): True when that version is not published yet."""
        if not versions:
            return []
        key = self._keys.published_versions(merchant_id)
        try:
            scores = await self._redis.zmscore(key, [order for order, _ in versions])
        except RedisError as exc:
            raise RedisUnavailable(f"cannot read published versions: {exc}") from exc
        return [
            _is_new(version, score)
            for (_, version), score in zip(versions, scores, strict=True)
        ]

    async def remember(
        self, merchant_id: str, versions: Iterable[tuple[str, float]]
    ) -> None:
        """Record versions Kafka acknowledged; an older version never lowers a score."""
        mapping: dict[str, float] = {}
        for order_id, version in versions:
            mapping[order_id] = max(version, mapping.get(order_id, version))
        if not mapping:
            return
        key = self._keys.published_versions(merchant_id)
        horizon_ms = time.time() * 1000 - self._retention_ms
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zadd(key, mapping, gt=True)
            pipe.zremrangebyscore(key, "-inf", horizon_ms)
            pipe.zremrangebyscore(key, DELETED_BASE, DELETED_BASE + horizon_ms)
            pipe.pexpire(key, self._retention_ms * 2)
            await pipe.execute()
        except RedisError as exc:
            raise RedisUnavailable(f"cannot record published versions: {exc}") from exc

    async def live_since(self, merchant_id: str, since_ms: int) -> list[str]:
        """Ids of orders published with a version since ``since_ms``, not deleted."""
        key = self._keys.published_versions(merchant_id)
        try:
            members = await self._redis.zrangebyscore(key, since_ms, f"({DELETED_BASE}")
        except RedisError as exc:
            raise RedisUnavailable(f"cannot read published versions: {exc}") from exc
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]
