"""Clover line items into locker order items.

Clover shows a quantity of three as three identical line items; the locker shows one
item with quantity 3. Weighed items (``unitQty`` in thousandths) keep their weight and
unit and are never merged. Refunded and exchanged lines are not in the bag.
"""

from __future__ import annotations

from typing import Any

from schemas.clover import CloverLineItem

_UNNAMED = "Item"
_THOUSANDTHS = 1000


def _modifiers(line: CloverLineItem) -> tuple[tuple[str, ...], int]:
    """The modifiers' names and the cents they add to one unit."""
    if not line.modifications:
        return (), 0
    names: list[str] = []
    extras = 0
    for modifier in line.modifications:
        name = modifier.name or modifier.alternate_name
        if name:
            names.append(name)
        extras += modifier.amount or 0
    return tuple(names), extras


def _weighed(qty: int | None, unit_name: str | None) -> tuple[float, str] | None:
    """Weight and unit of a weighed line, or None for a counted one."""
    if qty is None or qty <= 0:
        return None
    if unit_name is None and qty % _THOUSANDTHS == 0:
        # A whole count without a unit is a counted item that says its quantity.
        return None
    return qty / _THOUSANDTHS, unit_name or "unit"


def _count(qty: int | None) -> int:
    """How many units a counted line holds (``unitQty`` in thousandths)."""
    if qty is not None and qty > 0 and qty % _THOUSANDTHS == 0:
        return qty // _THOUSANDTHS
    return 1


ItemFields = dict[str, Any]


def _item(
    name: str,
    quantity: float,
    unit: str | None,
    modifiers: tuple[str, ...],
    note: str | None,
    price_cents: int,
) -> ItemFields:
    return {
        "name": name,
        "quantity": quantity,
        "unit": unit,
        "modifiers": modifiers,
        "note": note,
        "price_cents": price_cents,
    }


def order_items(lines: list[CloverLineItem]) -> list[ItemFields]:
    """Items in first-seen order (JSON form), identical counted lines merged."""
    items: list[ItemFields] = []
    counted: dict[tuple[object, ...], ItemFields] = {}
    for line in lines:
        if line.refunded or line.exchanged:
            continue
        modifiers, extras = _modifiers(line)
        name = line.name or line.alternate_name or _UNNAMED
        note = line.note
        # What one unit costs: the line's price plus its modifiers' amounts.
        price_cents = (line.price or 0) + extras
        qty = line.unit_qty
        weighed = _weighed(qty, line.unit_name) if qty is not None else None
        if weighed is not None:
            quantity, unit = weighed
            items.append(_item(name, quantity, unit, modifiers, note, price_cents))
            continue
        key = (name, modifiers, note, price_cents)
        same = counted.get(key)
        if same is not None:
            same["quantity"] += _count(qty)
            continue
        item = _item(name, _count(qty), None, modifiers, note, price_cents)
        counted[key] = item
        items.append(item)
    return items
