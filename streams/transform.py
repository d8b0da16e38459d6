"""The pure transform: one raw Clover record into a locker order draft, no I/O.

`read_record` turns the bytes on `clover.orders.raw` into a lenient `CloverOrder` or
a `DeleteMarker`; `draft_order` turns an order into an `OrderDraft`: everything the
locker order event holds except what needs memory of earlier versions (the event
type and the PIN). `finish` adds those. Input that cannot become a locker order
raises `InputError` with a machine-readable reason, never anything else: the stream
dead-letters it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

import orjson
from pydantic import ValidationError

from lockerlink.errors import InputError
from lockerlink.registry import Store
from schemas.clover import CloverOrder, NotAnOrder
from schemas.locker_order import (
    Channel,
    EventType,
    LockerOrderEvent,
    PinPolicyName,
    Platform,
    make_event_id,
)
from schemas.raw_order import DeleteMarker
from streams.items import order_items
from streams.origin import Origin, find_origin
from streams.pin import PinPlan, plan_pin


class Reason(StrEnum):
    """Why a record went to the dead-letter topic."""

    INVALID_JSON = "invalid_json"
    NOT_AN_ORDER = "not_an_order"
    MISSING_ORDER_ID = "missing_order_id"
    MISSING_VERSION = "missing_version"
    BAD_TIMESTAMP = "bad_timestamp"
    NO_MERCHANT = "no_merchant"
    NO_STORE = "no_store"
    PIN_SPACE_EXHAUSTED = "pin_space_exhausted"
    INVALID_EVENT = "invalid_event"
    TOO_LARGE = "too_large"
    INTERNAL_ERROR = "internal_error"


DEFAULT_CURRENCY = "USD"
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_CANCELLED_STATES = frozenset({"deleted", "voided", "void", "cancelled", "canceled"})
_MAX_NOTE_CHARS = 1000
# The event's own validator, called without `model_validate`'s keyword handling.
_STRICT = LockerOrderEvent.__pydantic_validator__
# Members' values by member: a plain lookup, cheaper than the enum's ``.value``.
_VALUE: dict[StrEnum, str] = {
    member: member.value
    for kind in (Channel, Platform, EventType, PinPolicyName)
    for member in kind
}
# A promised time more than this before the order was placed means the next day.
_READY_SLACK = timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class OrderDraft:
    """One order version as the locker will see it, minus event type and PIN.

    ``body`` holds the remaining event fields in their JSON form; `finish`
    validates the whole event strictly once, which is cheaper than building and
    checking each part on its own.
    """

    store_id: str
    merchant_id: str
    order_id: str
    order_version: int
    cancelled: bool
    body: dict[str, Any]

    def to_json(self) -> bytes:
        fields = {
            "store_id": self.store_id,
            "merchant_id": self.merchant_id,
            "order_id": self.order_id,
            "order_version": self.order_version,
            "cancelled": self.cancelled,
            "body": self.body,
        }
        try:
            return orjson.dumps(fields)
        except orjson.JSONEncodeError:
            # Integers over 64 bits or lone surrogates, which `_loads` accepts.
            return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, text: str | bytes) -> OrderDraft:
        return cls(**_loads(text))


@dataclass(frozen=True, slots=True)
class Drafted:
    """A draft with the PINs it may get."""

    draft: OrderDraft
    pin_plan: PinPlan


def _loads(value: bytes | str) -> Any:
    """JSON by orjson, or by the standard library where orjson is stricter.

    orjson refuses a few things `json` reads (integers over 64 bits, NaN, UTF-16
    text, lone surrogates); those records keep the meaning they always had.
    """
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return json.loads(value)


def read_record(value: bytes | None) -> CloverOrder | DeleteMarker:
    """The raw record's value as an order or a delete marker."""
    if value is None:
        raise InputError("record has no value", reason=Reason.NOT_AN_ORDER)
    try:
        data = _loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(
            f"value is not JSON: {exc}", reason=Reason.INVALID_JSON
        ) from exc
    if isinstance(data, dict) and data.get("deleted") is True:
        try:
            return DeleteMarker.model_validate(data)
        except ValidationError as exc:
            raise InputError(
                "delete marker without order id or merchant id",
                reason=Reason.NOT_AN_ORDER,
            ) from exc
    try:
        return CloverOrder.parse(data)
    except NotAnOrder as exc:
        raise InputError(str(exc), reason=Reason.NOT_AN_ORDER) from exc


def _utc_from_ms(epoch_ms: int) -> datetime:
    try:
        return datetime.fromtimestamp(epoch_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InputError(
            f"time {epoch_ms} ms is out of range", reason=Reason.BAD_TIMESTAMP
        ) from exc


def _ready_by(
    clock: tuple[int, int] | None, placed_at: datetime, tz: tzinfo | None
) -> datetime | None:
    """The promised time on the day the order was placed, in the store's zone."""
    if clock is None or tz is None:
        return None
    local = placed_at.astimezone(tz)
    ready = local.replace(hour=clock[0], minute=clock[1], second=0, microsecond=0)
    if ready < local - _READY_SLACK:
        ready += timedelta(days=1)
    return ready.astimezone(UTC)


def is_cancelled(order: CloverOrder) -> bool:
    """Whether the order was deleted or voided in Clover."""
    if order.deleted or order.voided:
        return True
    return (order.state or "").lower() in _CANCELLED_STATES or (
        order.payment_state or ""
    ).lower() in _CANCELLED_STATES


def _currency(order: CloverOrder) -> str:
    code = (order.currency or "").upper()
    return code if _CURRENCY.match(code) else DEFAULT_CURRENCY


def _total_cents(order: CloverOrder, items: list[dict[str, Any]]) -> int:
    if order.total is not None:
        return order.total
    return round(sum(float(i["price_cents"]) * float(i["quantity"]) for i in items))


def _source(origin: Origin) -> dict[str, Any]:
    platform = origin.platform
    return {
        "channel": _VALUE[origin.channel],
        "platform": _VALUE[platform] if platform else None,
        "platform_order_code": origin.platform_order_code,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def draft_order(
    order: CloverOrder, *, store: Store, merchant_id: str, tz: tzinfo | None = None
) -> Drafted:
    """The locker order draft of ``order`` for ``store``, and its PIN plan."""
    order_id = order.id
    if not order_id:
        raise InputError("order has no id", reason=Reason.MISSING_ORDER_ID)
    version = order.modified_time
    if version is None or version < 0:
        raise InputError(
            f"order {order_id} has no modifiedTime", reason=Reason.MISSING_VERSION
        )
    store_id = store.store_id
    note = order.note
    placed_ms = order.client_created_time or order.created_time or version
    placed_at = _utc_from_ms(placed_ms)
    origin = find_origin(order)
    items = order_items(order.line_items)
    draft = OrderDraft(
        store_id=store_id,
        merchant_id=merchant_id,
        order_id=order_id,
        order_version=version,
        cancelled=is_cancelled(order),
        body={
            "placed_at": placed_at.isoformat(),
            "source": _source(origin),
            "customer": {"display_name": origin.customer_name},
            "ready_by": _iso(_ready_by(origin.ready_clock, placed_at, tz)),
            "items": items,
            "total_cents": _total_cents(order, items),
            "currency": _currency(order),
            "note": note[:_MAX_NOTE_CHARS] if note else None,
        },
    )
    rule = store.pin_policy.rule_for(origin.channel, origin.platform)
    plan = plan_pin(rule, origin, store_id=store_id, order_id=order_id)
    return Drafted(draft, plan)


def finish(
    draft: OrderDraft, *, event_type: EventType, pin: str, policy: PinPolicyName
) -> LockerOrderEvent:
    """The locker order event of ``draft`` with the ledger's event type and PIN."""
    kind = _VALUE[EventType.CANCELLED if draft.cancelled else event_type]
    body = draft.body
    fields = {
        "event_id": make_event_id(
            draft.merchant_id, draft.order_id, draft.order_version, kind
        ),
        "event_type": kind,
        "store_id": draft.store_id,
        "merchant_id": draft.merchant_id,
        "order_id": draft.order_id,
        "order_version": draft.order_version,
        "placed_at": body["placed_at"],
        "source": body["source"],
        "customer": body["customer"],
        "pickup": {
            "pin": pin,
            "pin_policy": _VALUE[policy],
            "ready_by": body["ready_by"],
        },
        "items": body["items"],
        "total_cents": body["total_cents"],
        "currency": body["currency"],
        "note": body["note"],
    }
    try:
        event: LockerOrderEvent = _STRICT.validate_python(fields)
    except (ValidationError, KeyError, TypeError) as exc:
        raise InputError(
            f"order {draft.order_id} does not fit the locker order: "
            f"{_first_error(exc)}",
            reason=Reason.INVALID_EVENT,
        ) from exc
    return event


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return str(exc.errors()[0]["msg"])
    return type(exc).__name__
