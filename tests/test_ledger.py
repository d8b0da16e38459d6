"""The order ledger, in Redis and in memory: versions, cancellations and PINs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from lockerlink.keys import KeySpace
from lockerlink.registry import Store
from schemas.clover import CloverOrder
from schemas.locker_order import EventType, PinPolicyName
from streams.ledger import (
    MemoryLedger,
    OrderLedger,
    RedisLedger,
    Removal,
    Settlement,
    Upsert,
    Verdict,
)
from streams.pin import PinPlan
from streams.transform import draft_order

STORE = Store(store_id="ledger")
NOW_MS = 1_733_100_000_000
HOLD_S = 60

MakeLedger = Callable[[], OrderLedger]


@pytest.fixture(params=["redis", "memory"])
def make_ledger(
    request: pytest.FixtureRequest, redis: aioredis.Redis, keyspace: KeySpace
) -> MakeLedger:
    if request.param == "memory":
        shared = MemoryLedger(pin_hold_s=HOLD_S)
        return lambda: shared
    return lambda: RedisLedger(redis, keyspace, pin_hold_s=HOLD_S, order_ttl_s=600)


def _upsert(
    order_id: str, version: int, pins: tuple[str, ...], *, voided: bool = False
) -> Upsert:
    order = CloverOrder.parse(
        {"id": order_id, "modifiedTime": version, "state": "voided" if voided else None}
    )
    drafted = draft_order(order, store=STORE, merchant_id="M")
    plan = PinPlan(PinPolicyName.PLATFORM_CODE, pins)
    return Upsert(type(drafted)(drafted.draft, plan))


async def _one(
    ledger: OrderLedger, request: Upsert | Removal, now_ms: int = NOW_MS
) -> Settlement:
    (settled,) = await ledger.settle([request], now_ms)
    return settled


async def test_first_version_is_created_later_ones_updated_with_the_same_pin(
    make_ledger: MakeLedger,
) -> None:
    ledger = make_ledger()
    first = await _one(ledger, _upsert("O1", 100, ("11111", "22222")))
    later = await _one(ledger, _upsert("O1", 200, ("99999",)))
    assert (first.verdict, first.event_type, first.pin) == (
        Verdict.EMIT,
        EventType.CREATED,
        "11111",
    )
    assert (later.event_type, later.pin) == (EventType.UPDATED, "11111")


async def test_replaying_a_version_gives_the_same_event_type_and_pin(
    make_ledger: MakeLedger,
) -> None:
    ledger = make_ledger()
    await _one(ledger, _upsert("O1", 100, ("11111",)))
    again = await _one(ledger, _upsert("O1", 100, ("33333",)))
    assert (again.event_type, again.pin) == (EventType.CREATED, "11111")


async def test_an_older_version_than_one_emitted_is_stale(
    make_ledger: MakeLedger,
) -> None:
    ledger = make_ledger()
    await _one(ledger, _upsert("O1", 200, ("11111",)))
    stale = await _one(ledger, _upsert("O1", 100, ("11111",)))
    assert stale.verdict is Verdict.STALE


async def test_two_active_orders_never_share_a_pin(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    one, two = await ledger.settle(
        [_upsert("O1", 1, ("11111", "22222")), _upsert("O2", 1, ("11111", "22222"))],
        NOW_MS,
    )
    assert (one.pin, two.pin) == ("11111", "22222")


async def test_all_candidates_held_means_exhausted(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    await _one(ledger, _upsert("O1", 1, ("11111",)))
    blocked = await _one(ledger, _upsert("O2", 1, ("11111",)))
    assert blocked.verdict is Verdict.EXHAUSTED


async def test_cancellation_frees_the_pin_for_another_order(
    make_ledger: MakeLedger,
) -> None:
    ledger = make_ledger()
    await _one(ledger, _upsert("O1", 1, ("11111",)))
    cancelled = await _one(ledger, Removal("ledger", "O1", 5))
    reused = await _one(ledger, _upsert("O2", 1, ("11111",)))
    assert (cancelled.event_type, cancelled.pin) == (EventType.CANCELLED, "11111")
    assert cancelled.draft is not None
    assert cancelled.draft.order_id == "O1"
    assert reused.pin == "11111"


async def test_voided_version_cancels_and_later_versions_are_stale(
    make_ledger: MakeLedger,
) -> None:
    ledger = make_ledger()
    await _one(ledger, _upsert("O1", 1, ("11111",)))
    voided = await _one(ledger, _upsert("O1", 2, ("11111",), voided=True))
    replay = await _one(ledger, _upsert("O1", 2, ("11111",), voided=True))
    after = await _one(ledger, _upsert("O1", 3, ("11111",)))
    assert voided.event_type is EventType.CANCELLED
    assert replay.event_type is EventType.CANCELLED
    assert after.verdict is Verdict.STALE


async def test_cancelling_an_order_never_emitted_is_unknown(
    make_ledger: MakeLedger,
) -> None:
    ledger = make_ledger()
    assert (
        await _one(ledger, Removal("ledger", "NEVER", 5))
    ).verdict is Verdict.UNKNOWN


async def test_a_pin_held_past_its_hold_goes_to_the_next_order(
    make_ledger: MakeLedger,
) -> None:
    ledger = make_ledger()
    await _one(ledger, _upsert("O1", 1, ("11111",)))
    later_ms = NOW_MS + (HOLD_S + 1) * 1000
    taken = await _one(ledger, _upsert("O2", 1, ("11111",)), later_ms)
    moved = await _one(ledger, _upsert("O1", 2, ("11111", "44444")), later_ms)
    assert taken.pin == "11111"
    assert moved.pin == "44444", "the old holder must not share the PIN"


async def test_concurrent_workers_hand_out_each_pin_once(
    redis: aioredis.Redis, keyspace: KeySpace
) -> None:
    ledgers = [RedisLedger(redis, keyspace) for _ in range(4)]
    candidates = tuple(f"{n:05d}" for n in range(8))
    batches = [
        [_upsert(f"W{w}O{i}", 1, candidates) for i in range(2)] for w in range(4)
    ]
    results = await asyncio.gather(
        *(
            ledger.settle(batch, NOW_MS)
            for ledger, batch in zip(ledgers, batches, strict=True)
        )
    )
    pins = [s.pin for batch in results for s in batch]
    assert len(pins) == 8 and len(set(pins)) == 8


@pytest.mark.parametrize(
    "odd",
    [
        {"total": 2**70},  # over 64 bits: orjson refuses it, the stdlib does not
        {"note": "lone surrogate \ud800 in a note"},
        {"note": "Crème brûlée, 寿司 🍣"},
    ],
)
async def test_a_stored_draft_comes_back_intact_whatever_its_text_and_numbers(
    make_ledger: MakeLedger, odd: dict[str, object]
) -> None:
    ledger = make_ledger()
    order = CloverOrder.parse({"id": "O1", "modifiedTime": 1, **odd})
    drafted = draft_order(order, store=STORE, merchant_id="M")
    plan = PinPlan(PinPolicyName.PLATFORM_CODE, ("11111",))
    await _one(ledger, Upsert(type(drafted)(drafted.draft, plan)))
    cancelled = await _one(ledger, Removal("ledger", "O1", 5))
    assert cancelled.draft is not None
    assert cancelled.draft.body == drafted.draft.body
