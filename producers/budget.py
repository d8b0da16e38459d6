"""Clover's request budget, shared by every poller process through Redis.

Clover limits requests per second and concurrent requests, per app and per merchant
token. One Lua script checks and takes both scopes at once against Redis' own clock,
so processes on different machines count the same way. The configured limits sit
below Clover's, which is how we slow down before Clover has to say so; a 429 puts
its scope on hold for the ``retry-after`` Clover named.

Rates are counted as a sliding log of the last second (a sorted set of request
stamps), so no one-second window ever holds more than the limit. Concurrent
requests are holds with an expiry, so a process that dies mid-request frees its
slot after ``hold_ttl_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lockerlink.keys import KeySpace
from lockerlink.redis_store import RedisUnavailable

WINDOW_MS = 1000

# KEYS: app rate, app holds, app hold-off, merchant rate, merchant holds,
#       merchant hold-off, app probe, merchant probe
# ARGV: app rps, app concurrency, merchant rps, merchant concurrency, request id,
#       hold ttl ms, share of the rate this request may use (0..1]
# Returns {1, 0, probing} when taken, {0, wait_ms, 0} when the caller must wait.
# After a hold-off, a scope lets one request through (the probe) until one
# succeeds, so a 429 is not answered with a burst of requests at its end.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = 1000
local wait = 0
for _, i in ipairs({3, 6}) do
  local until_ms = tonumber(redis.call('GET', KEYS[i]) or '0')
  if until_ms > now then wait = math.max(wait, until_ms - now) end
end
if wait > 0 then return {0, wait, 0} end
local probing = 0
for _, pair in ipairs({{7, 2}, {8, 5}}) do
  if redis.call('EXISTS', KEYS[pair[1]]) == 1 then
    redis.call('ZREMRANGEBYSCORE', KEYS[pair[2]], '-inf', now)
    if redis.call('ZCARD', KEYS[pair[2]]) > 0 then return {0, 5, 0} end
    probing = 1
  end
end
local share = tonumber(ARGV[7])
for _, pair in ipairs({{1, 1}, {4, 3}}) do
  local key = KEYS[pair[1]]
  local limit = math.max(1, math.floor(tonumber(ARGV[pair[2]]) * share))
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now + 1)
  end
end
for _, pair in ipairs({{2, 2}, {5, 4}}) do
  local key = KEYS[pair[1]]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[pair[2]]) then
    wait = math.max(wait, 5)
  end
end
if wait > 0 then return {0, wait, 0} end
local ttl = tonumber(ARGV[6])
for _, i in ipairs({1, 4}) do
  redis.call('ZADD', KEYS[i], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[i], window * 2)
end
for _, i in ipairs({2, 5}) do
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[5])
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return {1, 0, probing}
"""

# KEYS: the hold-off key, the probe key; ARGV: milliseconds to hold off.
# Never shortens a hold-off; the probe mark outlives it until a success clears it.
_HOLD_OFF = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > current then
  redis.call('SET', KEYS[1], until_ms, 'PX', tonumber(ARGV[1]) + 1000)
end
redis.call('SET', KEYS[2], 1, 'PX', tonumber(ARGV[1]) + 10000)
return until_ms
"""


class Priority(Enum):
    """Webhook-triggered fetches go before polls, locally and in the shared budget."""

    WEBHOOK = 0
    POLL = 1


class Scope(Enum):
    APP = "app"
    MERCHANT = "merchant"


@dataclass(frozen=True)
class BudgetLimits:
    """Our share of Clover's limits; keep them under Clover's own."""

    app_requests_per_s: float
    app_concurrency: int
    merchant_requests_per_s: float
    merchant_concurrency: int
    # Polls may use only this share of the per-second budgets, so webhook-triggered
    # fetches always find room.
    poll_share: float = 0.8
    hold_ttl_ms: int = 30_000


class PriorityGate:
    """An in-process semaphore that serves webhook fetches before polls.

    Only gate holders ask Redis for budget, so thousands of waiting merchants do not
    spin on the shared script.
    """

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @contextlib.asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[None]:
        await self._acquire(priority)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: Priority) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority.value, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1


@dataclass
class Slot:
    """One request's place in the budget; say whether Clover accepted it."""

    request_id: str
    keys: list[str]
    probing: bool = False
    succeeded: bool = False


class CloverBudget:
    """Takes and gives back Clover request slots for the app and one merchant."""

    def __init__(
        self, redis: aioredis.Redis, keys: KeySpace, limits: BudgetLimits
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.limits = limits
        self._acquire = redis.register_script(_ACQUIRE)
        self._hold_off = redis.register_script(_HOLD_OFF)
        self._gate = PriorityGate(limits.app_concurrency)

    def _scope_keys(self, scope: str) -> list[str]:
        return [
            self._keys.clover_budget(f"{scope}:rate"),
            self._keys.clover_budget(f"{scope}:holds"),
            self._keys.clover_budget(f"{scope}:holdoff"),
        ]

    def _keys_for(self, merchant_id: str) -> list[str]:
        merchant = f"merchant:{merchant_id}"
        return [
            *self._scope_keys("app"),
            *self._scope_keys(merchant),
            self._keys.clover_budget("app:probe"),
            self._keys.clover_budget(f"{merchant}:probe"),
        ]

    @contextlib.asynccontextmanager
    async def request(
        self, merchant_id: str, priority: Priority = Priority.POLL
    ) -> AsyncIterator[Slot]:
        """Hold one request slot for ``merchant_id`` for the life of the block."""
        async with self._gate.slot(priority):
            slot = Slot(uuid.uuid4().hex, self._keys_for(merchant_id))
            slot.probing = await self._take(slot.keys, slot.request_id, priority)
            try:
                yield slot
            finally:
                await self._give_back(slot)

    async def _take(self, keys: list[str], request_id: str, priority: Priority) -> bool:
        limits = self.limits
        share = limits.poll_share if priority is Priority.POLL else 1.0
        args: list[str | float] = [
            limits.app_requests_per_s,
            limits.app_concurrency,
            limits.merchant_requests_per_s,
            limits.merchant_concurrency,
            request_id,
            limits.hold_ttl_ms,
            share,
        ]
        while True:
            try:
                taken, wait_ms, probing = await self._acquire(keys=keys, args=args)
            except RedisError as exc:
                raise RedisUnavailable(f"Clover budget unavailable: {exc}") from exc
            if int(taken) == 1:
                return bool(int(probing))
            await asyncio.sleep(int(wait_ms) / 1000)

    async def _give_back(self, slot: Slot) -> None:
        keys = slot.keys
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zrem(keys[1], slot.request_id)
            pipe.zrem(keys[4], slot.request_id)
            if slot.probing and slot.succeeded:
                pipe.delete(keys[6], keys[7])
            await pipe.execute()
        except RedisError:
            # The hold expires on its own after hold_ttl_ms; nothing is lost.
            pass

    async def hold_off(self, scope: Scope, merchant_id: str, wait_s: float) -> None:
        """Stop every process from calling Clover in ``scope`` for ``wait_s``."""
        name = "app" if scope is Scope.APP else f"merchant:{merchant_id}"
        keys = [
            self._keys.clover_budget(f"{name}:holdoff"),
            self._keys.clover_budget(f"{name}:probe"),
        ]
        try:
            await self._hold_off(keys=keys, args=[max(1, int(wait_s * 1000))])
        except RedisError as exc:
            raise RedisUnavailable(f"Clover budget unavailable: {exc}") from exc
