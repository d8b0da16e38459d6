"""The status board: what each component last did, kept in Redis for the status page.

Components write small facts as they work (a merchant polled, an order delivered
with its end-to-end latency, a breaker opened, a dead letter); the status page reads
them back. Latency is kept per minute in fixed buckets for the last two hours, so the
board stays a few kilobytes however many orders flow.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from lockerlink.keys import KeySpace

# Upper bounds of the latency buckets, in milliseconds; the last bucket is open.
LATENCY_BUCKETS_MS = (
    50, 100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 30_000,
)  # fmt: skip
_LATENCY_TTL_S = 2 * 3600


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class StoreStatus:
    """What the board knows about one store's delivery."""

    store_id: str
    last_delivery_ms: int | None = None
    delivered: int = 0
    lag: int | None = None
    breaker: str = "closed"
    dead_letters: int = 0


@dataclass
class LatencyMinute:
    """End-to-end latency of the orders delivered in one minute."""

    minute: int
    count: int
    p50_ms: float
    p99_ms: float


@dataclass
class Board:
    """The whole board, read at once for the status page."""

    polls_ms: dict[str, int] = field(default_factory=dict)
    stores: list[StoreStatus] = field(default_factory=list)
    latency: list[LatencyMinute] = field(default_factory=list)


def _quantile(counts: list[int], q: float) -> float:
    total = sum(counts)
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            if index < len(LATENCY_BUCKETS_MS):
                return float(LATENCY_BUCKETS_MS[index])
            return float(LATENCY_BUCKETS_MS[-1])
    return float(LATENCY_BUCKETS_MS[-1])


class StatusBoard:
    """Writes and reads the status facts of every component."""

    def __init__(self, redis: aioredis.Redis, keyspace: KeySpace) -> None:
        self.redis = redis
        self.keyspace = keyspace

    async def record_poll(self, merchant_id: str, at_ms: int | None = None) -> None:
        await self.redis.hset(
            self.keyspace.status_polls(), merchant_id, at_ms or _now_ms()
        )

    async def record_delivery(
        self, store_id: str, latency_ms: float | None, at_ms: int | None = None
    ) -> None:
        """One order acknowledged by the store's locker, with its end-to-end latency."""
        now_ms = at_ms or _now_ms()
        key = self.keyspace.status_store(store_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(self.keyspace.status_stores(), store_id)
        pipe.hset(key, "last_delivery_ms", now_ms)
        pipe.hincrby(key, "delivered", 1)
        if latency_ms is not None:
            bucket = bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)
            minute_key = self.keyspace.status_latency(now_ms // 60_000)
            pipe.hincrby(minute_key, f"b{bucket}", 1)
            pipe.hincrby(minute_key, "count", 1)
            pipe.expire(minute_key, _LATENCY_TTL_S)
        await pipe.execute()

    async def record_breaker(self, store_id: str, state: str) -> None:
        await self.redis.sadd(self.keyspace.status_stores(), store_id)
        await self.redis.hset(self.keyspace.status_store(store_id), "breaker", state)

    async def record_lag(self, store_id: str, lag: int) -> None:
        await self.redis.sadd(self.keyspace.status_stores(), store_id)
        await self.redis.hset(self.keyspace.status_store(store_id), "lag", lag)

    async def record_dead_letter(self, store_id: str | None) -> None:
        store = store_id or "(unknown)"
        await self.redis.sadd(self.keyspace.status_stores(), store)
        await self.redis.hincrby(self.keyspace.status_store(store), "dead_letters", 1)

    async def read(self, minutes: int = 60, now_ms: int | None = None) -> Board:
        """Everything on the board, with latency for the last ``minutes`` minutes."""
        board = Board()
        polls = await self.redis.hgetall(self.keyspace.status_polls())
        board.polls_ms = {str(_text(k)): int(v) for k, v in polls.items()}
        store_ids = sorted(
            str(_text(s))
            for s in await self.redis.smembers(self.keyspace.status_stores())
        )
        for store_id in store_ids:
            raw = await self.redis.hgetall(self.keyspace.status_store(store_id))
            fields = {str(_text(k)): str(_text(v)) for k, v in raw.items()}
            board.stores.append(
                StoreStatus(
                    store_id=store_id,
                    last_delivery_ms=_int(fields.get("last_delivery_ms")),
                    delivered=_int(fields.get("delivered")) or 0,
                    lag=_int(fields.get("lag")),
                    breaker=fields.get("breaker", "closed"),
                    dead_letters=_int(fields.get("dead_letters")) or 0,
                )
            )
        current = (now_ms or _now_ms()) // 60_000
        for minute in range(current - minutes + 1, current + 1):
            raw = await self.redis.hgetall(self.keyspace.status_latency(minute))
            if not raw:
                continue
            tally = {str(_text(k)): int(v) for k, v in raw.items()}
            counts = [tally.get(f"b{i}", 0) for i in range(len(LATENCY_BUCKETS_MS) + 1)]
            board.latency.append(
                LatencyMinute(
                    minute=minute,
                    count=tally.get("count", 0),
                    p50_ms=_quantile(counts, 0.50),
                    p99_ms=_quantile(counts, 0.99),
                )
            )
        return board


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None
