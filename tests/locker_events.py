"""Locker order events for tests: valid, deterministic, one order or many."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.locker_order import (
    Channel,
    Customer,
    EventType,
    Item,
    LockerOrderEvent,
    Pickup,
    PinPolicyName,
    Source,
    make_event_id,
)


def locker_event(
    store_id: str,
    order_id: str,
    *,
    version: int = 1,
    event_type: EventType = EventType.CREATED,
    merchant_id: str = "MERCHANT00001",
    pin: str = "4821",
) -> LockerOrderEvent:
    """One version of one order for ``store_id``."""
    return LockerOrderEvent(
        event_id=make_event_id(merchant_id, order_id, version, event_type.value),
        event_type=event_type,
        store_id=store_id,
        merchant_id=merchant_id,
        order_id=order_id,
        order_version=version,
        placed_at=datetime(2026, 12, 3, 12, 0, tzinfo=UTC),
        source=Source(channel=Channel.IN_STORE),
        customer=Customer(display_name="Joe M."),
        pickup=Pickup(pin=pin, pin_policy=PinPolicyName.RANDOM),
        items=(Item(name="Burrito", quantity=1, price_cents=1099),),
        total_cents=1099,
        currency="USD",
    )


def order_events(
    store_id: str, count: int, *, prefix: str = "O"
) -> list[LockerOrderEvent]:
    """``count`` distinct orders for one store, each created once."""
    return [
        locker_event(store_id, f"{prefix}{i:06d}", version=1000 + i)
        for i in range(count)
    ]
