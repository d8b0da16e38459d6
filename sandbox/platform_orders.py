"""Delivery-platform orders, written into Clover each way real data shows.

- ``note``: an integrator's multi-line note: customer, platform in capitals, and
  ``DELIVERY 18:37``, sometimes a reference line that is not the platform's code;
- ``title``: staff typed platform and customer name in either order, any case,
  abbreviated or misspelt, on a Pick Up order;
- ``order_type``: an order type named after the platform, an external reference id
  and a customer record.
"""

from __future__ import annotations

import random
import uuid
from typing import Any, Literal

from sandbox.order_menu import (
    NOTE_EXTRAS,
    PLATFORM_LABELS,
    PLATFORM_SPELLINGS,
    Person,
    customer_record,
)
from sandbox.order_types import OrderTypes

Doc = dict[str, Any]
PlatformStyle = Literal["note", "title", "order_type"]
PLATFORM_STYLES: tuple[PlatformStyle, ...] = ("note", "title", "order_type")


class PlatformOrders:
    """Writes the fields of one platform order and says what it is meant to be."""

    def __init__(self, chooser: random.Random, order_types: OrderTypes) -> None:
        self._random = chooser
        self._types = order_types

    def write(
        self, merchant_id: str, person: Person, pickup: str
    ) -> tuple[Doc, dict[str, Any]]:
        """Order fields, and the intent: platform, style, customer, time, code."""
        platform = self._random.choice(sorted(PLATFORM_SPELLINGS))
        style = self._random.choice(PLATFORM_STYLES)
        code, reference = self._codes(platform)
        intent: dict[str, Any] = {
            "platform": platform,
            "style": style,
            "customer_first_name": person.first,
        }
        if style == "note":
            intent["pickup_time"] = pickup
            return self._in_note(merchant_id, platform, person, pickup), intent
        if style == "title":
            return self._in_title(merchant_id, platform, person), intent
        intent["customer_last_name"] = person.last
        intent["courier_code"] = code
        return self._in_order_type(merchant_id, platform, person, reference), intent

    def _in_note(
        self, merchant_id: str, platform: str, person: Person, pickup: str
    ) -> Doc:
        lines = [
            f"{person.first.upper()} {person.last[0]}",
            PLATFORM_LABELS[platform].upper(),
            f"DELIVERY {pickup}",
        ]
        if self._random.random() < 0.4:
            lines.append(f"REF {self._random.randrange(100000, 999999)}")
        return {
            "orderType": self._types.system(merchant_id, "pick_up"),
            "note": "\n".join(lines),
        }

    def _in_title(self, merchant_id: str, platform: str, person: Person) -> Doc:
        spelled = self._random.choice(PLATFORM_SPELLINGS[platform])
        name = self._random.choice(
            (person.first, person.first.lower(), f"{person.first} {person.last[0]}")
        )
        parts = [spelled, name] if self._random.random() < 0.5 else [name, spelled]
        title = " ".join(parts) + self._random.choice(("", " ", "  "))
        return {"orderType": self._types.system(merchant_id, "pick_up"), "title": title}

    def _in_order_type(
        self, merchant_id: str, platform: str, person: Person, reference: str
    ) -> Doc:
        return {
            "orderType": self._types.custom(merchant_id, PLATFORM_LABELS[platform]),
            "externalReferenceId": reference,
            "customers": [customer_record(person)],
            "note": self._random.choice(NOTE_EXTRAS),
        }

    def _codes(self, platform: str) -> tuple[str | None, str]:
        """The integrator's reference id, and the code a courier would see when the
        order carries it (Uber Eats: the reference's last five characters)."""
        reference = str(uuid.UUID(int=self._random.getrandbits(128), version=4))
        if platform == "uber_eats":
            return reference[-5:].upper(), reference
        return None, reference
