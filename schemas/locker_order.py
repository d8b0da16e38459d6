"""The locker order event: what a store's locker server receives for each order version.

Strict and versioned. Locker vendors get its JSON Schema (`lockerlink schemas export`);
a change that breaks them bumps ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = 1

NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventType(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    CANCELLED = "cancelled"


class Channel(StrEnum):
    IN_STORE = "in_store"
    DELIVERY = "delivery"


class Platform(StrEnum):
    UBER_EATS = "uber_eats"
    DOORDASH = "doordash"
    SKIP_THE_DISHES = "skip_the_dishes"
    GRUBHUB = "grubhub"
    POSTMATES = "postmates"
    OTHER = "other"


class Source(_Strict):
    """Where the order came from."""

    channel: Channel
    platform: Platform | None = Field(
        None, description="Delivery platform; null for in-store orders."
    )
    platform_order_code: str | None = Field(
        None, description="The code the courier's app shows, when known."
    )


class Customer(_Strict):
    display_name: str | None = Field(
        None, description='First name and last initial, e.g. "Joe M.", or null.'
    )


class PinPolicyName(StrEnum):
    PLATFORM_CODE = "platform_code"
    PHONE_DIGITS = "phone_digits"
    RANDOM = "random"


class Pickup(_Strict):
    pin: Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{3,12}$")]
    pin_policy: PinPolicyName
    ready_by: datetime | None = Field(None, description="Promised pickup time, UTC.")


class Item(_Strict):
    name: NonEmpty
    quantity: float = Field(gt=0, description="Count, or weight for weighed items.")
    unit: str | None = Field(None, description="Unit of a weighed item, e.g. 'lb'.")
    modifiers: tuple[str, ...] = ()
    note: str | None = None
    price_cents: int = Field(description="Price of one unit, in cents.")


class LockerOrderEvent(_Strict):
    """One version of one order, as the store's lockers must hold it."""

    schema_version: Literal[1] = 1
    event_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    event_type: EventType
    store_id: NonEmpty
    merchant_id: NonEmpty
    order_id: NonEmpty
    order_version: int = Field(ge=0, description="Clover modifiedTime, epoch ms.")
    placed_at: datetime
    source: Source
    customer: Customer
    pickup: Pickup
    items: tuple[Item, ...]
    total_cents: int
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    note: str | None = None


def make_event_id(
    merchant_id: str, order_id: str, order_version: int, kind: str
) -> str:
    """A deterministic id: the same order version always gives the same event id."""
    seed = f"{merchant_id}\x1f{order_id}\x1f{order_version}\x1f{kind}"
    return hashlib.sha256(seed.encode()).hexdigest()[:32]
