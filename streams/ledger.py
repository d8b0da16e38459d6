"""The order ledger: what was emitted per order, and which PINs are in use per store.

The stateful half of the stream. For every order it remembers the first and last
version emitted, the PIN, the PIN policy and the last draft; for every store, which
PIN belongs to which active order until when. From that it decides, per record:

- a version older than one already emitted is stale and dropped;
- the first version emitted is ``created``, later ones (and replays of them) are
  ``updated`` with the same PIN; replaying a version gives the same event again;
- a deleted or voided order is ``cancelled`` and frees its PIN; a cancellation of
  an order never emitted is nothing to tell the locker (``unknown``);
- a new order takes the first of its candidate PINs that no other active order in the
  store holds. A PIN is held while its order is active: until ``pin_hold_s`` after
  the order's last event, or its cancellation.

`RedisLedger` keeps this in Redis (one Lua script per record, so two stream workers
sharing a store never hand out one PIN twice); `MemoryLedger` keeps it in a dict for
`lockerlink transform` and has the same behaviour.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from lockerlink.errors import DependencyError
from lockerlink.keys import KeySpace
from schemas.locker_order import EventType, PinPolicyName
from streams.transform import Drafted, OrderDraft


class Verdict(StrEnum):
    EMIT = "emit"
    STALE = "stale"
    UNKNOWN = "unknown"
    EXHAUSTED = "exhausted"


@dataclass(frozen=True)
class Upsert:
    """A new or changed (or voided) order version."""

    drafted: Drafted


@dataclass(frozen=True)
class Removal:
    """Clover deleted the order; ``version`` orders it among the order's versions."""

    store_id: str
    order_id: str
    version: int


Request = Upsert | Removal


@dataclass(frozen=True)
class Settlement:
    """The ledger's answer for one request; the event parts when it is to be emitted.

    ``draft`` is the order as last stored when the request carried none (a
    deletion); an upsert's own draft stays the caller's.
    """

    verdict: Verdict
    event_type: EventType | None = None
    pin: str | None = None
    policy: PinPolicyName | None = None
    draft: OrderDraft | None = None


DEFAULT_PIN_HOLD_S = 24 * 3600
DEFAULT_ORDER_TTL_S = 7 * 24 * 3600


class OrderLedger(ABC):
    """Decides event type and PIN for each request, in order."""

    def __init__(
        self,
        *,
        pin_hold_s: int = DEFAULT_PIN_HOLD_S,
        order_ttl_s: int = DEFAULT_ORDER_TTL_S,
    ) -> None:
        self.pin_hold_ms = pin_hold_s * 1000
        self.order_ttl_s = order_ttl_s

    @abstractmethod
    async def settle(
        self, requests: Sequence[Request], now_ms: int
    ) -> list[Settlement]:
        """Settle ``requests`` in order; later ones see the effects of earlier ones."""


def _settlement(reply: list[Any]) -> Settlement:
    verdict = Verdict(_text(reply[0]))
    if verdict is not Verdict.EMIT:
        return Settlement(verdict)
    return Settlement(
        verdict,
        EventType(_text(reply[1])),
        _text(reply[2]),
        PinPolicyName(_text(reply[3])),
        OrderDraft.from_json(reply[4]) if len(reply) > 4 else None,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# KEYS: order state hash, store's active PIN hash, order's PIN key.
# ARGV: mode, order id, version, now ms, hold ms, ttl s, draft json, cancelled flag,
#       policy, candidate PINs...
# Active PIN entries are "order_id|held_until_ms"; two random entries are looked at
# on every upsert and removed when expired, so the hash does not grow forever.
_SETTLE_LUA = """
local state, active, pin_key = KEYS[1], KEYS[2], KEYS[3]
local mode, order_id = ARGV[1], ARGV[2]
local version, now = tonumber(ARGV[3]), tonumber(ARGV[4])
local hold, ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local draft, cancel = ARGV[7], (mode == 'cancel' or ARGV[8] == '1')

local function holder(pin)
  local entry = redis.call('HGET', active, pin)
  if not entry then return nil end
  local owner, until_ms = string.match(entry, '^(.*)|(%d+)$')
  if owner == nil or tonumber(until_ms) < now then return nil end
  return owner
end

local last = redis.call('HGET', state, 'last')
if last then
  last = tonumber(last)
  if version < last then return {'stale'} end
  if redis.call('HGET', state, 'cancelled') == '1' then
    local pin = redis.call('GET', pin_key)
    if version == last and cancel and pin then
      return {'emit', 'cancelled', pin, redis.call('HGET', state, 'policy'),
              redis.call('HGET', state, 'draft')}
    end
    return {'stale'}
  end
end

if cancel then
  local pin = redis.call('GET', pin_key)
  if not last or not pin then return {'unknown'} end
  if pin and holder(pin) == order_id then redis.call('HDEL', active, pin) end
  if mode == 'cancel' then draft = redis.call('HGET', state, 'draft') end
  redis.call('HSET', state, 'last', version, 'cancelled', '1', 'draft', draft)
  redis.call('EXPIRE', state, ttl)
  redis.call('EXPIRE', pin_key, ttl)
  return {'emit', 'cancelled', pin, redis.call('HGET', state, 'policy'), draft}
end

for _, field in ipairs(redis.call('HRANDFIELD', active, 2) or {}) do
  if holder(field) == nil then redis.call('HDEL', active, field) end
end

local pin = redis.call('GET', pin_key)
local policy = redis.call('HGET', state, 'policy')
if pin then
  local owner = holder(pin)
  if owner ~= nil and owner ~= order_id then pin = nil end
end
if not pin then
  for i = 10, #ARGV do
    local owner = holder(ARGV[i])
    if owner == nil or owner == order_id then pin = ARGV[i]; break end
  end
  if not pin then return {'exhausted'} end
  policy = ARGV[9]
end
redis.call('HSET', active, pin, order_id .. '|' .. (now + hold))
redis.call('SET', pin_key, pin, 'EX', ttl)
local first = tonumber(redis.call('HGET', state, 'first') or version)
redis.call('HSET', state, 'first', first, 'last', version, 'policy', policy,
           'draft', draft)
redis.call('EXPIRE', state, ttl)
local kind = 'updated'
if first == version then kind = 'created' end
return {'emit', kind, pin, policy}
"""


_Arg = bytes | str | int


class RedisLedger(OrderLedger):
    """The ledger in Redis, shared by every stream worker."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keyspace: KeySpace,
        *,
        pin_hold_s: int = DEFAULT_PIN_HOLD_S,
        order_ttl_s: int = DEFAULT_ORDER_TTL_S,
    ) -> None:
        super().__init__(pin_hold_s=pin_hold_s, order_ttl_s=order_ttl_s)
        self.redis = redis
        self.keyspace = keyspace
        self._script = redis.register_script(_SETTLE_LUA)

    def _call(self, request: Request, now_ms: int) -> tuple[list[str], list[_Arg]]:
        if isinstance(request, Removal):
            store_id, order_id, version = (
                request.store_id,
                request.order_id,
                request.version,
            )
            tail: list[_Arg] = ["", "1", ""]
            mode = "cancel"
        else:
            draft = request.drafted.draft
            plan = request.drafted.pin_plan
            store_id, order_id, version = (
                draft.store_id,
                draft.order_id,
                draft.order_version,
            )
            flag = "1" if draft.cancelled else "0"
            tail = [draft.to_json(), flag, plan.policy.value, *plan.candidates]
            mode = "upsert"
        keys = [
            self.keyspace.order_version(store_id, order_id),
            self.keyspace.active_pins(store_id),
            self.keyspace.order_pin(store_id, order_id),
        ]
        argv: list[_Arg] = [
            mode,
            order_id,
            version,
            now_ms,
            self.pin_hold_ms,
            self.order_ttl_s,
        ]
        return keys, [*argv, *tail]

    async def settle(
        self, requests: Sequence[Request], now_ms: int
    ) -> list[Settlement]:
        if not requests:
            return []
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for request in requests:
                    keys, args = self._call(request, now_ms)
                    await self._script(keys=keys, args=args, client=pipe)
                replies = await pipe.execute()
        except RedisError as exc:
            raise DependencyError(f"order ledger in Redis failed: {exc}") from exc
        return [_settlement(reply) for reply in replies]


@dataclass
class _OrderState:
    first: int
    last: int
    policy: PinPolicyName
    draft: OrderDraft
    pin: str
    cancelled: bool = False


@dataclass
class _StorePins:
    holders: dict[str, tuple[str, int]] = field(default_factory=dict)

    def holder(self, pin: str, now_ms: int) -> str | None:
        entry = self.holders.get(pin)
        if entry is None or entry[1] < now_ms:
            return None
        return entry[0]


class MemoryLedger(OrderLedger):
    """The same ledger in process memory, for one-off transforms and tests."""

    def __init__(
        self,
        *,
        pin_hold_s: int = DEFAULT_PIN_HOLD_S,
        order_ttl_s: int = DEFAULT_ORDER_TTL_S,
    ) -> None:
        super().__init__(pin_hold_s=pin_hold_s, order_ttl_s=order_ttl_s)
        self._orders: dict[tuple[str, str], _OrderState] = {}
        self._pins: dict[str, _StorePins] = {}

    async def settle(
        self, requests: Sequence[Request], now_ms: int
    ) -> list[Settlement]:
        return [self._settle_one(request, now_ms) for request in requests]

    def _settle_one(self, request: Request, now_ms: int) -> Settlement:
        if isinstance(request, Removal):
            key = (request.store_id, request.order_id)
            version, cancel, drafted = request.version, True, None
        else:
            draft = request.drafted.draft
            key = (draft.store_id, draft.order_id)
            version, cancel, drafted = draft.order_version, draft.cancelled, request
        state = self._orders.get(key)
        pins = self._pins.setdefault(key[0], _StorePins())
        if state is not None:
            if version < state.last:
                return Settlement(Verdict.STALE)
            if state.cancelled:
                if version == state.last and cancel:
                    return self._emit(EventType.CANCELLED, state)
                return Settlement(Verdict.STALE)
        if cancel or drafted is None:
            return self._cancel(key, state, pins, version, drafted, now_ms)
        return self._upsert(key, state, pins, drafted, now_ms)

    @staticmethod
    def _emit(event_type: EventType, state: _OrderState) -> Settlement:
        return Settlement(
            Verdict.EMIT, event_type, state.pin, state.policy, state.draft
        )

    def _cancel(
        self,
        key: tuple[str, str],
        state: _OrderState | None,
        pins: _StorePins,
        version: int,
        drafted: Upsert | None,
        now_ms: int,
    ) -> Settlement:
        if state is None:
            return Settlement(Verdict.UNKNOWN)
        if pins.holder(state.pin, now_ms) == key[1]:
            del pins.holders[state.pin]
        state.last, state.cancelled = version, True
        if drafted is not None:
            state.draft = drafted.drafted.draft
        return self._emit(EventType.CANCELLED, state)

    def _upsert(
        self,
        key: tuple[str, str],
        state: _OrderState | None,
        pins: _StorePins,
        request: Upsert,
        now_ms: int,
    ) -> Settlement:
        order_id = key[1]
        plan = request.drafted.pin_plan
        draft = request.drafted.draft
        pin = state.pin if state is not None else None
        policy = state.policy if state is not None else plan.policy
        if pin is not None and pins.holder(pin, now_ms) not in (None, order_id):
            pin = None
        if pin is None:
            free = (
                c for c in plan.candidates if pins.holder(c, now_ms) in (None, order_id)
            )
            pin = next(free, None)
            if pin is None:
                return Settlement(Verdict.EXHAUSTED)
            policy = plan.policy
        pins.holders[pin] = (order_id, now_ms + self.pin_hold_ms)
        if state is None:
            state = _OrderState(
                draft.order_version, draft.order_version, policy, draft, pin
            )
            self._orders[key] = state
        state.last, state.policy, state.draft, state.pin = (
            draft.order_version,
            policy,
            draft,
            pin,
        )
        kind = EventType.CREATED if state.first == state.last else EventType.UPDATED
        return self._emit(kind, state)
