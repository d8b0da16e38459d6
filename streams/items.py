"""Clover line items into locker order items.

Clover shows a quantity of three as three identical line items; the locker shows one
item with quantity 3. Weighed items (``unitQty`` in thousandths) keep their weight and
unit and are never merged. Refunded and exchanged lines are not in the bag.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.clover import CloverLineItem
from schemas.locker_order import Item

_UNNAMED = "Item"
_THOUSANDTHS = 1000


def _modifier_names(line: CloverLineItem) -> tuple[str, ...]:
    return tuple(
        name
        for name in (m.name or m.alternate_name for m in line.modifications)
        if name
    )


def _unit_price_cents(line: CloverLineItem) -> int:
    """The line's price plus its modifiers' amounts: what one unit costs."""
    extras = sum(m.amount or 0 for m in line.modifications)
    return (line.price or 0) + extras


def _weighed(line: CloverLineItem) -> tuple[float, str] | None:
    """Weight and unit of a weighed line, or None for a counted one."""
    qty = line.unit_qty
    if qty is None or qty <= 0:
        return None
    if line.unit_name is None and qty % _THOUSANDTHS == 0:
        # A whole count without a unit is a counted item that says its quantity.
        return None
    return qty / _THOUSANDTHS, line.unit_name or "unit"


def _count(line: CloverLineItem) -> int:
    qty = line.unit_qty
    if qty is not None and qty > 0 and qty % _THOUSANDTHS == 0:
        return qty // _THOUSANDTHS
    return 1


@dataclass(frozen=True)
class _Counted:
    """What makes two counted lines the same item."""

    name: str
    modifiers: tuple[str, ...]
    note: str | None
    price_cents: int


def order_items(lines: list[CloverLineItem]) -> tuple[Item, ...]:
    """Items in first-seen order, identical counted lines collapsed into one."""
    counts: dict[_Counted, int] = {}
    entries: list[Item | _Counted] = []
    for line in lines:
        if line.refunded or line.exchanged:
            continue
        name = line.name or line.alternate_name or _UNNAMED
        modifiers = _modifier_names(line)
        price_cents = _unit_price_cents(line)
        weighed = _weighed(line)
        if weighed is not None:
            weight, unit = weighed
            entries.append(
                Item(
                    name=name,
                    quantity=weight,
                    unit=unit,
                    modifiers=modifiers,
                    note=line.note,
                    price_cents=price_cents,
                )
            )
            continue
        key = _Counted(name, modifiers, line.note, price_cents)
        if key not in counts:
            counts[key] = 0
            entries.append(key)
        counts[key] += _count(line)
    return tuple(_item(entry, counts) for entry in entries)


def _item(entry: Item | _Counted, counts: dict[_Counted, int]) -> Item:
    if isinstance(entry, Item):
        return entry
    return Item(
        name=entry.name,
        quantity=counts[entry],
        modifiers=entry.modifiers,
        note=entry.note,
        price_cents=entry.price_cents,
    )
