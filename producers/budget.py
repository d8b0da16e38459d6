"""Clover's request budget: the app's shared by every poller process through Redis.

Clover limits requests per second and concurrent requests, per app and per merchant
token. The app's limits are shared by every poller process: one Lua script checks
and takes them against Redis' own clock, so processes on different machines count
the same way. A merchant is polled and fetched only by the process holding its
lease, so its limits are kept in that process, without a round trip; only a 429's
hold-off of a merchant is also written to Redis, and read back by the next process
to take the merchant, so a lease moving mid hold-off does not end it. The configured
limits sit below Clover's, which is how we slow down before Clover has to say so;
a 429 puts its scope on hold for the ``retry-after`` Clover named, and afterwards
lets one request through (a probe) until one succeeds, so the end of a hold-off is
not met with a burst.

Rates are counted as a sliding log of the last second, so no one-second window ever
holds more than the limit. Concurrent requests are holds with an expiry, so a
process that dies mid-request frees its slots after ``hold_ttl_ms``. Releasing an
app hold rides on the next acquisition (or a flush moments later), so a steady
stream of requests costs one round trip each.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lockerlink.keys import KeySpace
from lockerlink.redis_store import RedisUnavailable

WINDOW_S = 1.0
RELEASE_FLUSH_S = 0.02

# KEYS: app rate, app holds, app hold-off, app probe
# ARGV: rps, concurrency, request id, hold ttl ms, share of the rate this request
#       may use (0..1], then request ids whose holds end now
# Returns {1, 0, probing} when taken, {0, wait_ms, 0} when the caller must wait.
_ACQUIRE = """
for i = 6, #ARGV do redis.call('ZREM', KEYS[2], ARGV[i]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = tonumber(redis.call('GET', KEYS[3]) or '0')
if until_ms > now then return {0, until_ms - now, 0} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local holds = redis.call('ZCARD', KEYS[2])
local probing = redis.call('EXISTS', KEYS[4])
if probing == 1 and holds > 0 then return {0, 5, 0} end
if holds >= tonumber(ARGV[2]) then return {0, 5, 0} end
local limit = math.max(1, math.floor(tonumber(ARGV[1]) * tonumber(ARGV[5])))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1000)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, tonumber(oldest[2]) + 1000 - now + 1, 0}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], 2000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[3])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]) * 2)
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


# KEYS: a merchant's hold-off key; ARGV: milliseconds to hold off. The key holds the
# end of the hold-off on Redis' clock and outlives it, as the mark that the next
# request is a probe, until a success deletes it. Never shortens a hold-off.
_MERCHANT_HOLD_OFF = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
if until_ms > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], until_ms, 'PX', tonumber(ARGV[1]) + 10000)
end
return until_ms
"""

# KEYS: a merchant's hold-off key. Returns -1 when there is none, else the
# milliseconds left of it (0: over, but the next request is a probe).
_MERCHANT_HOLD_OFF_LEFT = """
local until_ms = redis.call('GET', KEYS[1])
if not until_ms then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return math.max(0, tonumber(until_ms) - now)
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


class MerchantWindow:
    """One merchant's limits, kept in the process that holds its lease."""

    def __init__(self) -> None:
        self.stamps: collections.deque[float] = collections.deque()
        self.in_flight = 0
        self.hold_until = 0.0
        self.probing = False
        # Reading a hold-off the merchant's previous lease holder left in Redis.
        self.adopting: asyncio.Task[None] | None = None

    def wait_s(self, limits: BudgetLimits, share: float, now: float) -> float:
        """Seconds to wait before a request may go; 0 when it may go now."""
        if self.hold_until > now:
            return self.hold_until - now
        if self.in_flight >= limits.merchant_concurrency or (
            self.probing and self.in_flight > 0
        ):
            return 0.005
        while self.stamps and self.stamps[0] <= now - WINDOW_S:
            self.stamps.popleft()
        limit = max(1, int(limits.merchant_requests_per_s * share))
        if len(self.stamps) >= limit:
            return self.stamps[0] + WINDOW_S - now + 0.001
        return 0.0

    def take(self, now: float) -> None:
        self.stamps.append(now)
        self.in_flight += 1

    def give_back(self, succeeded: bool) -> None:
        self.in_flight -= 1
        if succeeded:
            self.probing = False

    def hold_off(self, wait_s: float) -> None:
        self.hold_until = max(self.hold_until, time.monotonic() + wait_s)
        self.probing = True


@dataclass
class Slot:
    """One request's place in the budget; say whether Clover accepted it."""

    request_id: str
    probing: bool = False
    succeeded: bool = False


class CloverBudget:
    """Takes and gives back Clover request slots for the app and one merchant."""

    def __init__(
        self, redis: aioredis.Redis, keys: KeySpace, limits: BudgetLimits
    ) -> None:
        self._redis = redis
        self.limits = limits
        self._keys = [
            keys.clover_budget("app:rate"),
            keys.clover_budget("app:holds"),
            keys.clover_budget("app:holdoff"),
            keys.clover_budget("app:probe"),
        ]
        self._acquire = redis.register_script(_ACQUIRE)
        self._hold_off = redis.register_script(_HOLD_OFF)
        self._keyspace = keys
        self._merchant_hold_off = redis.register_script(_MERCHANT_HOLD_OFF)
        self._merchant_hold_off_left = redis.register_script(_MERCHANT_HOLD_OFF_LEFT)
        self._gate = PriorityGate(limits.app_concurrency)
        self._merchants: dict[str, MerchantWindow] = {}
        self._releases: list[str] = []
        self._flush: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    def forget(self, merchant_id: str) -> None:
        """Drop a merchant's local limits once its lease is gone."""
        window = self._merchants.get(merchant_id)
        if window is not None and window.in_flight == 0:
            del self._merchants[merchant_id]

    @contextlib.asynccontextmanager
    async def request(
        self, merchant_id: str, priority: Priority = Priority.POLL
    ) -> AsyncIterator[Slot]:
        """Hold one request slot for ``merchant_id`` for the life of the block."""
        share = self.limits.poll_share if priority is Priority.POLL else 1.0
        window = await self._window(merchant_id)
        async with self._gate.slot(priority):
            await self._merchant_turn(window, share)
            window.take(time.monotonic())
            slot = Slot(uuid.uuid4().hex)
            try:
                slot.probing = await self._take_app(slot.request_id, share)
                try:
                    yield slot
                finally:
                    self._give_back_app(slot)
            finally:
                if window.probing and slot.succeeded:
                    self._spawn(self._end_merchant_hold_off(merchant_id))
                window.give_back(slot.succeeded)

    async def _window(self, merchant_id: str) -> MerchantWindow:
        """The merchant's limits; new here, they start with any hold-off in Redis."""
        window = self._merchants.get(merchant_id)
        if window is None:
            window = self._merchants[merchant_id] = MerchantWindow()
            window.adopting = asyncio.get_running_loop().create_task(
                self._adopt(merchant_id, window)
            )
        if window.adopting is not None:
            await asyncio.shield(window.adopting)
        return window

    async def _adopt(self, merchant_id: str, window: MerchantWindow) -> None:
        key = self._keyspace.merchant_hold_off(merchant_id)
        try:
            left_ms = int(await self._merchant_hold_off_left(keys=[key]))
        except RedisError as exc:
            if self._merchants.get(merchant_id) is window:
                del self._merchants[merchant_id]
            raise RedisUnavailable(f"Clover budget unavailable: {exc}") from exc
        if left_ms >= 0:
            window.hold_off(left_ms / 1000)
        window.adopting = None

    async def _end_merchant_hold_off(self, merchant_id: str) -> None:
        with contextlib.suppress(RedisError):
            # Left behind, the mark only costs the next holder one probe.
            await self._redis.delete(self._keyspace.merchant_hold_off(merchant_id))

    async def _merchant_turn(self, window: MerchantWindow, share: float) -> None:
        while True:
            wait_s = window.wait_s(self.limits, share, time.monotonic())
            if wait_s <= 0:
                return
            await asyncio.sleep(wait_s)

    async def _take_app(self, request_id: str, share: float) -> bool:
        limits = self.limits
        while True:
            releases, self._releases = self._releases, []
            args: list[str | float] = [
                limits.app_requests_per_s,
                limits.app_concurrency,
                request_id,
                limits.hold_ttl_ms,
                share,
                *releases,
            ]
            try:
                taken, wait_ms, probing = await self._acquire(
                    keys=self._keys, args=args
                )
            except RedisError as exc:
                self._releases.extend(releases)
                raise RedisUnavailable(f"Clover budget unavailable: {exc}") from exc
            if int(taken) == 1:
                return bool(int(probing))
            await asyncio.sleep(int(wait_ms) / 1000)

    def _give_back_app(self, slot: Slot) -> None:
        self._releases.append(slot.request_id)
        if slot.probing and slot.succeeded:
            self._spawn(self._clear_probe())
        if self._flush is None:
            loop = asyncio.get_running_loop()
            self._flush = loop.call_later(
                RELEASE_FLUSH_S, lambda: self._spawn(self._flush_releases())
            )

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush_releases(self) -> None:
        """Release holds no acquisition carried along: the process went quiet."""
        self._flush = None
        releases, self._releases = self._releases, []
        if not releases:
            return
        with contextlib.suppress(RedisError):
            # On failure the holds expire on their own after hold_ttl_ms.
            await self._redis.zrem(self._keys[1], *releases)

    async def _clear_probe(self) -> None:
        with contextlib.suppress(RedisError):
            await self._redis.delete(self._keys[3])

    async def close(self) -> None:
        """Release every hold still queued for release."""
        if self._flush is not None:
            self._flush.cancel()
        await self._flush_releases()
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)

    async def hold_off(self, scope: Scope, merchant_id: str, wait_s: float) -> None:
        """Stop calling Clover in ``scope`` for ``wait_s``.

        The app's hold-off stops every process; a merchant's stops this process and,
        through Redis, whichever process holds the merchant's lease next.
        """
        wait_ms = max(1, int(wait_s * 1000))
        try:
            if scope is Scope.MERCHANT:
                window = self._merchants.setdefault(merchant_id, MerchantWindow())
                window.hold_off(wait_s)
                key = self._keyspace.merchant_hold_off(merchant_id)
                await self._merchant_hold_off(keys=[key], args=[wait_ms])
                return
            await self._hold_off(keys=[self._keys[2], self._keys[3]], args=[wait_ms])
        except RedisError as exc:
            raise RedisUnavailable(f"Clover budget unavailable: {exc}") from exc
