"""Seeded, reproducible Clover orders in the shapes real restaurant data shows.

Dine-in, pick-up and take-out orders, and delivery-platform orders written each
way they reach Clover: the platform in a multi-line note with a pickup time, a
staff-typed title (platform and name in either order, any case, abbreviated or
misspelt), or an order type named after the platform with an external reference
and a customer record. Some orders carry odd types (numbers and booleans as
strings); later steps add items, change states and delete orders.

The same seed and the same calls give the same orders; ``generated`` keeps what
each order is meant to be, so tests can check the parse and the delivery.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox.clover_orderbook import Doc, OrderBook, order_total_cents
from sandbox.order_menu import (
    MENU,
    MODIFIERS,
    WEIGHED,
    MenuItem,
    customer_record,
    draw_clock_time,
    draw_person,
)
from sandbox.order_types import OrderTypes
from sandbox.platform_orders import PlatformOrders, PlatformStyle

Channel = Literal["dine_in", "pick_up", "take_out", "platform"]


@dataclass
class GeneratorConfig:
    """How many orders, of which kinds, and how often they change afterwards."""

    seed: int = 0
    orders_per_s: float = 0.0
    tick_s: float = 0.1
    channel_weights: dict[str, float] = field(
        default_factory=lambda: {
            "dine_in": 3,
            "pick_up": 2,
            "take_out": 2,
            "platform": 3,
        }
    )
    update_probability: float = 0.3
    delete_probability: float = 0.05
    odd_types_probability: float = 0.25


@dataclass(frozen=True)
class GeneratedOrder:
    """What a generated order is meant to be, beside how it was written."""

    merchant_id: str
    order_id: str
    channel: Channel
    platform: str | None = None
    style: PlatformStyle | None = None
    customer_first_name: str | None = None
    customer_last_name: str | None = None
    pickup_time: str | None = None
    courier_code: str | None = None


class OrderGenerator:
    """Writes generated orders into an ``OrderBook`` and keeps their intent."""

    def __init__(self, book: OrderBook, config: GeneratorConfig) -> None:
        self._book = book
        self.config = config
        self._random = random.Random(config.seed)  # noqa: S311 - simulation only
        self._order_types = OrderTypes(self._random)
        self._platforms = PlatformOrders(self._random, self._order_types)
        self._live: dict[str, list[str]] = {}
        self.generated: list[GeneratedOrder] = []
        # While paused, `run` writes nothing and owes nothing for the pause.
        self.paused = False

    # -- one order --------------------------------------------------------------------
    def new_order(
        self, merchant_id: str, channel: Channel | None = None
    ) -> GeneratedOrder:
        """Create one order; the channel is drawn from the weights unless given."""
        chosen = channel or self._channel()
        if chosen == "platform":
            person, pickup = draw_person(self._random), draw_clock_time(self._random)
            fields, intent = self._platforms.write(merchant_id, person, pickup)
        else:
            fields, intent = self._store_order(merchant_id, chosen)
        fields["lineItems"] = self._line_items()
        fields.update(self._common_fields())
        if fields["paymentState"] == "PAID":
            fields["payments"] = [self._payment(fields["lineItems"])]
        if self._chance(self.config.odd_types_probability):
            _make_odd(fields, self._random)
        created = self._book.create(merchant_id, fields)
        made = GeneratedOrder(merchant_id, created["id"], chosen, **intent)
        self.generated.append(made)
        self._live.setdefault(merchant_id, []).append(created["id"])
        return made

    def step(self, merchant_id: str) -> GeneratedOrder:
        """One new order, and perhaps an update or a deletion of an earlier one."""
        made = self.new_order(merchant_id)
        if self._chance(self.config.update_probability):
            self.change_order(merchant_id)
        if self._chance(self.config.delete_probability):
            self.delete_order(merchant_id)
        return made

    def change_order(self, merchant_id: str) -> str | None:
        """Add an item to, lock, or re-note an earlier live order; returns its id."""
        order_id = self._pick_live(merchant_id)
        if order_id is None:
            return None
        how = self._random.choice(("add_item", "state", "note"))
        if how == "add_item":
            self._book.update(merchant_id, order_id, add_line_items=self._line_items(1))
        elif how == "state":
            self._book.update(merchant_id, order_id, {"state": "locked"})
        else:
            self._add_note_line(merchant_id, order_id, "customer running late ")
        return order_id

    def _add_note_line(self, merchant_id: str, order_id: str, line: str) -> None:
        current = self._book.get(merchant_id, order_id) or {}
        note = current.get("note")
        added = f"{note}\n{line}" if note else line
        self._book.update(merchant_id, order_id, {"note": added})

    def delete_order(self, merchant_id: str) -> str | None:
        order_id = self._pick_live(merchant_id)
        if order_id is not None:
            self._live[merchant_id].remove(order_id)
            self._book.delete(merchant_id, order_id)
        return order_id

    # -- at a rate --------------------------------------------------------------------
    async def run(self, merchant_ids: Callable[[], Iterable[str]]) -> None:
        """Generate ``orders_per_s`` for every merchant until cancelled."""
        owed: dict[str, float] = {}
        last_s = time.monotonic()
        while True:
            await asyncio.sleep(self.config.tick_s)
            now_s = time.monotonic()
            elapsed_s, last_s = now_s - last_s, now_s
            if self.paused:
                owed.clear()
                continue
            for merchant_id in merchant_ids():
                due = owed.get(merchant_id, 0.0) + self.config.orders_per_s * elapsed_s
                while due >= 1:
                    self.step(merchant_id)
                    due -= 1
                owed[merchant_id] = due

    # -- kinds of order ---------------------------------------------------------------
    def _store_order(
        self, merchant_id: str, channel: Channel
    ) -> tuple[Doc, dict[str, Any]]:
        fields: Doc = {"orderType": self._order_types.system(merchant_id, channel)}
        person = draw_person(self._random)
        if channel == "dine_in":
            fields["title"] = self._random.choice(
                ("Table 4", "T12", "table 7 ", "Bar 2")
            )
            return fields, {}
        pickup = draw_clock_time(self._random)
        if channel == "pick_up":
            fields["title"] = f"{person.first} {pickup}"
            fields["customers"] = [customer_record(person)]
        else:
            fields["title"] = person.first
        return fields, {
            "customer_first_name": person.first,
            "customer_last_name": person.last if channel == "pick_up" else None,
            "pickup_time": pickup if channel == "pick_up" else None,
        }

    # -- parts ------------------------------------------------------------------------
    def _line_items(self, at_least: int = 1) -> list[Doc]:
        items: list[Doc] = []
        for _ in range(max(at_least, self._random.randint(1, 4))):
            if self._chance(0.12):
                items.append(self._weighed_item())
                continue
            item = self._random.choice(MENU)
            mods = self._modifications()
            # Quantity shows as repeated identical line items.
            for _ in range(self._random.choice((1, 1, 1, 2, 3))):
                items.append(_line_item(item, mods))
        return items

    def _weighed_item(self) -> Doc:
        item = self._random.choice(WEIGHED)
        unit_qty = self._random.choice((250, 500, 1250, 2000))
        return {**_line_item(item, []), "unitQty": unit_qty, "unitName": item.unit_name}

    def _modifications(self) -> list[Doc]:
        count = self._random.choice((0, 0, 1, 2))
        chosen = self._random.sample(MODIFIERS, count)
        return [{"name": name, "amount": amount} for name, amount in chosen]

    def _common_fields(self) -> Doc:
        return {
            "state": self._random.choice(("open", "open", "locked", None)),
            "paymentState": self._random.choice(("OPEN", "PAID")),
            "employee": {"id": f"EMP{self._random.randrange(10**9):09d}1"},
            "device": {
                "id": str(uuid.UUID(int=self._random.getrandbits(128), version=4))
            },
        }

    def _payment(self, line_items: list[Doc]) -> Doc:
        return {
            "amount": order_total_cents(line_items),
            "tipAmount": self._random.choice((0, 0, 100, 250)),
            "result": "SUCCESS",
            "tender": {"label": self._random.choice(("Credit Card", "Cash"))},
        }

    def _channel(self) -> Channel:
        weights = self.config.channel_weights
        names = sorted(weights)
        picked = self._random.choices(names, [weights[n] for n in names])[0]
        return _as_channel(picked)

    def _pick_live(self, merchant_id: str) -> str | None:
        live = self._live.get(merchant_id) or []
        return self._random.choice(live) if live else None

    def _chance(self, probability: float) -> bool:
        return self._random.random() < probability


def _as_channel(name: str) -> Channel:
    for channel in ("dine_in", "pick_up", "take_out", "platform"):
        if name == channel:
            return channel
    raise ValueError(f"unknown channel {name!r} in channel_weights")


def _line_item(item: MenuItem, mods: list[Doc]) -> Doc:
    made: Doc = {"name": item.name, "price": item.price_cents, "isRevenue": True}
    if mods:
        made["modifications"] = [dict(mod) for mod in mods]
    return made


def _make_odd(fields: Doc, chooser: random.Random) -> None:
    """Numbers and booleans as strings, as some of Clover's own examples show."""
    for item in fields["lineItems"]:
        item["price"] = str(item["price"])
        item["isRevenue"] = chooser.choice(("true", "True", True))
        if "unitQty" in item:
            item["unitQty"] = str(item["unitQty"])
    if fields.get("title"):
        fields["title"] = f"{fields['title']}\n"
    fields["taxRemoved"] = "false"
