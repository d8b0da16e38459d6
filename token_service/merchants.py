"""Connected merchants: their stores, refresh state and failure back-off, in Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from lockerlink.keys import KeySpace
from schemas.token_rotation import MerchantState


@dataclass(frozen=True)
class Merchant:
    """What the vault knows about one merchant besides its tokens."""

    merchant_id: str
    state: MerchantState
    store_ids: tuple[str, ...]
    connected_at_ms: int
    last_refresh_at_ms: int
    failures: int
    retry_at_ms: int
    last_error: str

    def backing_off(self, now_ms: int) -> bool:
        return self.retry_at_ms > now_ms


class MerchantRegistry:
    """Reads and updates merchant records and the store-to-merchant map."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keyspace: KeySpace,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._keyspace = keyspace

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def get(self, merchant_id: str) -> Merchant | None:
        raw = await self._redis.hgetall(self._keyspace.merchant(merchant_id))
        if not raw:
            return None
        return _merchant(merchant_id, {_text(k): _text(v) for k, v in raw.items()})

    async def all(self) -> list[Merchant]:
        ids = sorted(
            _text(m)
            for m in await self._redis.smembers(self._keyspace.merchants_index())
        )
        found = [await self.get(merchant_id) for merchant_id in ids]
        return [m for m in found if m is not None]

    async def merchant_of_store(self, store_id: str) -> str | None:
        raw = await self._redis.get(self._keyspace.store_merchant(store_id))
        return _text(raw) if raw is not None else None

    async def connect(self, merchant_id: str, store_id: str) -> Merchant:
        """Record a fresh authorization of ``merchant_id`` for ``store_id``."""
        previous = await self.merchant_of_store(store_id)
        if previous is not None and previous != merchant_id:
            await self._drop_store(previous, store_id)
        current = await self.get(merchant_id)
        stores = set(current.store_ids) if current else set()
        stores.add(store_id)
        now_ms = self._now_ms()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._keyspace.merchant(merchant_id),
                mapping={
                    "state": MerchantState.CONNECTED.value,
                    "stores": json.dumps(sorted(stores)),
                    "connected_at_ms": now_ms,
                    "last_refresh_at_ms": now_ms,
                    "failures": 0,
                    "retry_at_ms": 0,
                    "last_error": "",
                },
            )
            pipe.sadd(self._keyspace.merchants_index(), merchant_id)
            pipe.set(self._keyspace.store_merchant(store_id), merchant_id)
            await pipe.execute()
        merchant = await self.get(merchant_id)
        assert merchant is not None
        return merchant

    async def record_refresh(self, merchant_id: str) -> None:
        await self._redis.hset(
            self._keyspace.merchant(merchant_id),
            mapping={
                "state": MerchantState.CONNECTED.value,
                "last_refresh_at_ms": self._now_ms(),
                "failures": 0,
                "retry_at_ms": 0,
                "last_error": "",
            },
        )

    async def record_failure(
        self, merchant_id: str, state: MerchantState, retry_at_ms: int, error: str
    ) -> None:
        key = self._keyspace.merchant(merchant_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "state": state.value,
                    "retry_at_ms": retry_at_ms,
                    "last_error": error[:200],
                },
            )
            pipe.hincrby(key, "failures", 1)
            await pipe.execute()

    async def _drop_store(self, merchant_id: str, store_id: str) -> None:
        current = await self.get(merchant_id)
        if current is None:
            return
        stores = sorted(set(current.store_ids) - {store_id})
        await self._redis.hset(
            self._keyspace.merchant(merchant_id), "stores", json.dumps(stores)
        )


def _merchant(merchant_id: str, raw: dict[str, str]) -> Merchant:
    def text(name: str) -> str:
        return raw.get(name, "")

    def number(name: str) -> int:
        return int(raw.get(name) or 0)

    return Merchant(
        merchant_id=merchant_id,
        state=MerchantState(text("state") or MerchantState.CONNECTED.value),
        store_ids=tuple(json.loads(text("stores") or "[]")),
        connected_at_ms=number("connected_at_ms"),
        last_refresh_at_ms=number("last_refresh_at_ms"),
        failures=number("failures"),
        retry_at_ms=number("retry_at_ms"),
        last_error=text("last_error"),
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
