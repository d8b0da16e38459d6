"""The case table: realistic Clover orders and the locker orders they must become."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from lockerlink.registry import Keypad, PinPolicy, PinRule, Store
from schemas.dead_letter import DeadLetter
from schemas.locker_order import LockerOrderEvent, PinPolicyName, Platform
from schemas.topics import DEAD_LETTER, RAW_ORDERS
from streams.ledger import MemoryLedger
from streams.processor import OrderProcessor
from streams.record import RawRecord

CASES_FILE = Path(__file__).parent / "data" / "stream_cases.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
MERCHANT = "MCASES"

STORE = Store(
    store_id="cases",
    merchant_ids=(MERCHANT,),
    timezone="America/Toronto",
    pin_policy=PinPolicy(
        platforms={
            Platform.DOORDASH: PinRule(source=PinPolicyName.PHONE_DIGITS, length=4),
            Platform.SKIP_THE_DISHES: PinRule(
                source=PinPolicyName.PLATFORM_CODE,
                keypad=Keypad.ALPHANUMERIC,
                length=6,
            ),
        }
    ),
)

BASE_ORDER: dict[str, Any] = {
    "id": "CASEORDER0001",
    "merchant": {"id": MERCHANT},
    "currency": "USD",
    "total": 1000,
    "state": "locked",
    "createdTime": 1733095800000,
    "modifiedTime": 1733095800000,
    "lineItems": {"elements": [{"id": "LI1", "name": "Pho", "price": 1000}]},
}

ORDER_TYPES: dict[str, dict[str, str]] = {
    "pickup": {
        "id": "OTPICKUP",
        "label": "Pick Up",
        "labelKey": "com.clover.order.type.pick_up",
        "systemOrderTypeId": "PICK-UP-TYPE",
    },
    "dinein": {
        "id": "OTDINEIN",
        "label": "Dine In",
        "labelKey": "com.clover.order.type.dine_in",
        "systemOrderTypeId": "DINE-IN-TYPE",
    },
    "takeout": {
        "id": "OTTAKEOUT",
        "label": "Take Out",
        "labelKey": "com.clover.order.type.take_out",
        "systemOrderTypeId": "TAKE-OUT-TYPE",
    },
    "delivery": {
        "id": "OTDELIVERY",
        "label": "Delivery",
        "systemOrderTypeId": "DELIVERY-TYPE",
    },
}


def _order(case: dict[str, Any]) -> dict[str, Any]:
    order = copy.deepcopy(BASE_ORDER)
    for key in case.get("drop", []):
        order.pop(key, None)
    order.update(copy.deepcopy(case.get("order") or {}))
    order_type = order.get("orderType")
    if isinstance(order_type, str):
        order["orderType"] = ORDER_TYPES[order_type]
    return order


async def _run(order: dict[str, Any]) -> list[tuple[str, bytes]]:
    async def resolve(merchant_id: str) -> Store | None:
        return STORE if merchant_id == MERCHANT else None

    record = RawRecord(
        RAW_ORDERS, 0, 7, MERCHANT.encode(), json.dumps(order).encode(), ()
    )
    outputs = await OrderProcessor(resolve, MemoryLedger()).process([record])
    return [(out.topic, out.value) for out in outputs]


def _check_event(event: LockerOrderEvent, expect: dict[str, Any]) -> None:
    actual: dict[str, Any] = {
        "channel": event.source.channel.value,
        "platform": event.source.platform and event.source.platform.value,
        "code": event.source.platform_order_code,
        "customer": event.customer.display_name,
        "pin": event.pickup.pin,
        "pin_policy": event.pickup.pin_policy.value,
        "pin_length": len(event.pickup.pin),
        "ready_by": event.pickup.ready_by
        and event.pickup.ready_by.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "total": event.total_cents,
        "currency": event.currency,
        "items": [
            [i.name, i.quantity, i.unit, i.price_cents, list(i.modifiers)]
            for i in event.items
        ],
    }
    for field, wanted in expect.items():
        if field == "outcome":
            continue
        if field == "items":
            assert len(actual["items"]) == len(wanted), actual["items"]
            pairs = zip(actual["items"], wanted, strict=True)
            got = [row[: len(want)] for row, want in pairs]
            assert got == wanted, actual["items"]
            continue
        assert actual[field] == wanted, f"{field}: {actual[field]!r} != {wanted!r}"


def test_the_table_has_at_least_sixty_cases() -> None:
    assert len(CASES) >= 60
    assert len({case["name"] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
async def test_case(case: dict[str, Any]) -> None:
    outputs = await _run(_order(case))
    expect: dict[str, Any] = case["expect"]
    outcome = expect.get("outcome", "event")
    if outcome == "none":
        assert outputs == []
        return
    assert len(outputs) == 1
    topic, value = outputs[0]
    if outcome.startswith("dead_letter:"):
        assert topic == DEAD_LETTER
        letter = DeadLetter.model_validate_json(value)
        assert letter.reason == outcome.removeprefix("dead_letter:")
        assert letter.original_value() == json.dumps(_order(case)).encode()
        return
    assert topic == "lockers.cases.orders", DeadLetter.model_validate_json(value)
    _check_event(LockerOrderEvent.model_validate_json(value), expect)
