"""The orders and customers a Clover sandbox holds, with every version written.

``modifiedTime`` is the listing key. Each write gets a ``modifiedTime`` greater than
every earlier one of the same merchant (and never behind the clock), so
``(modifiedTime, id)`` orders a merchant's orders totally and a change always moves
an order to the end of that order.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox.clover_ids import CloverIds

Doc = dict[str, Any]
ChangeKind = Literal["CREATE", "UPDATE", "DELETE"]
ChangeListener = Callable[[str, str, ChangeKind, int], None]


@dataclass(frozen=True)
class OrderVersion:
    """One write of one order, as tests see it: which, when, and whether deleted."""

    merchant_id: str
    order_id: str
    version: int
    modified_time_ms: int
    kind: ChangeKind


@dataclass
class _Record:
    doc: Doc
    version: int = 1
    deleted: bool = False


@dataclass
class _Merchant:
    orders: dict[str, _Record] = field(default_factory=dict)
    customers: dict[str, Doc] = field(default_factory=dict)
    last_modified_ms: int = 0


class OrderBook:
    """Orders per merchant; create, update and delete them; list them in order.

    Each merchant's orders are kept in modifiedTime order (an update moves the order
    to the end; a deletion leaves it in place, hidden), so listings need no sort.
    """

    def __init__(self, ids: CloverIds, clock: Callable[[], float]) -> None:
        self._ids = ids
        self._clock = clock
        self._merchants: dict[str, _Merchant] = {}
        self._versions: list[OrderVersion] = []
        self._listeners: list[ChangeListener] = []

    def add_merchant(self, merchant_id: str) -> None:
        self._merchants.setdefault(merchant_id, _Merchant())

    def has_merchant(self, merchant_id: str) -> bool:
        return merchant_id in self._merchants

    def merchant_ids(self) -> list[str]:
        return list(self._merchants)

    def on_change(self, listener: ChangeListener) -> None:
        """Call ``listener(merchant_id, order_id, kind, ts_ms)`` after every write."""
        self._listeners.append(listener)

    # -- writes --------------------------------------------------------------------
    def create(self, merchant_id: str, fields: Doc) -> Doc:
        """Store a new order from Clover-shaped fields; returns the stored order.

        ``lineItems``, ``customers`` and ``payments`` are plain lists here (the
        REST layer wraps them); ids, times and a total are filled in when absent.
        """
        merchant = self._merchant(merchant_id)
        doc = copy.deepcopy(fields)
        doc.setdefault("id", self._ids.new())
        now_ms = self._next_modified_ms(merchant)
        doc.setdefault("createdTime", now_ms)
        doc.setdefault("clientCreatedTime", doc["createdTime"])
        doc["modifiedTime"] = now_ms
        doc.setdefault("currency", "USD")
        self._fill_line_items(doc)
        for customer in doc.get("customers") or []:
            customer.setdefault("id", self._ids.new())
            merchant.customers[customer["id"]] = copy.deepcopy(customer)
        doc.setdefault("total", order_total_cents(doc.get("lineItems") or []))
        merchant.orders[doc["id"]] = _Record(doc)
        self._written(merchant_id, doc["id"], 1, now_ms, "CREATE")
        return copy.deepcopy(doc)

    def update(
        self,
        merchant_id: str,
        order_id: str,
        changes: Doc | None = None,
        add_line_items: Iterable[Doc] = (),
    ) -> Doc:
        """Change fields and/or add line items; the order moves to the newest end."""
        merchant = self._merchant(merchant_id)
        record = self._live_record(merchant, order_id)
        record.doc.update(copy.deepcopy(changes or {}))
        added = [copy.deepcopy(item) for item in add_line_items]
        if added:
            record.doc["lineItems"] = [*(record.doc.get("lineItems") or []), *added]
            self._fill_line_items(record.doc)
            record.doc["total"] = order_total_cents(record.doc["lineItems"])
        record.version += 1
        record.doc["modifiedTime"] = self._next_modified_ms(merchant)
        # Keep the dict in modifiedTime order: a changed order moves to the end.
        merchant.orders[order_id] = merchant.orders.pop(order_id)
        self._written(
            merchant_id, order_id, record.version, record.doc["modifiedTime"], "UPDATE"
        )
        return copy.deepcopy(record.doc)

    def delete(self, merchant_id: str, order_id: str) -> None:
        """Delete an order: it leaves listings and single reads answer 404."""
        merchant = self._merchant(merchant_id)
        record = self._live_record(merchant, order_id)
        record.deleted = True
        record.version += 1
        now_ms = self._next_modified_ms(merchant)
        self._written(merchant_id, order_id, record.version, now_ms, "DELETE")

    # -- reads ---------------------------------------------------------------------
    def listing(
        self,
        merchant_id: str,
        keep: Callable[[Doc], bool],
        since_ms: int | None = None,
    ) -> list[Doc]:
        """Live orders that ``keep`` accepts, by (modifiedTime, id); not copies.

        ``since_ms`` (a lower bound on modifiedTime the caller already knows) lets
        the scan start from the newest end and stop early.
        """
        merchant = self._merchants.get(merchant_id)
        if merchant is None:
            return []
        if since_ms is None:
            records: Iterable[_Record] = merchant.orders.values()
        else:
            records = _newer_than(merchant.orders, since_ms)
        return [
            record.doc for record in records if not record.deleted and keep(record.doc)
        ]

    def get(self, merchant_id: str, order_id: str) -> Doc | None:
        """A live order (not a copy), or None when unknown or deleted."""
        merchant = self._merchants.get(merchant_id)
        record = merchant.orders.get(order_id) if merchant else None
        return None if record is None or record.deleted else record.doc

    def customer(self, merchant_id: str, customer_id: str) -> Doc | None:
        merchant = self._merchants.get(merchant_id)
        return merchant.customers.get(customer_id) if merchant else None

    def versions(self, merchant_id: str | None = None) -> list[OrderVersion]:
        """Every write so far, oldest first, optionally for one merchant."""
        return [v for v in self._versions if merchant_id in (None, v.merchant_id)]

    def latest_versions(self) -> dict[tuple[str, str], OrderVersion]:
        """The newest write of each order, keyed by (merchant id, order id)."""
        return {(v.merchant_id, v.order_id): v for v in self._versions}

    # -- internals -----------------------------------------------------------------
    def _merchant(self, merchant_id: str) -> _Merchant:
        merchant = self._merchants.get(merchant_id)
        if merchant is None:
            raise KeyError(f"unknown merchant {merchant_id}")
        return merchant

    def _live_record(self, merchant: _Merchant, order_id: str) -> _Record:
        record = merchant.orders.get(order_id)
        if record is None or record.deleted:
            raise KeyError(f"no live order {order_id}")
        return record

    def _next_modified_ms(self, merchant: _Merchant) -> int:
        merchant.last_modified_ms = max(
            int(self._clock() * 1000), merchant.last_modified_ms + 1
        )
        return merchant.last_modified_ms

    def _fill_line_items(self, doc: Doc) -> None:
        for item in doc.get("lineItems") or []:
            item.setdefault("id", self._ids.new())
            for modification in item.get("modifications") or []:
                modification.setdefault("id", self._ids.new())

    def _written(
        self,
        merchant_id: str,
        order_id: str,
        version: int,
        ts_ms: int,
        kind: ChangeKind,
    ) -> None:
        self._versions.append(OrderVersion(merchant_id, order_id, version, ts_ms, kind))
        for listener in self._listeners:
            listener(merchant_id, order_id, kind, ts_ms)


def _newer_than(orders: dict[str, _Record], since_ms: int) -> list[_Record]:
    """Records with modifiedTime >= since_ms, oldest first; orders are in order."""
    newer: list[_Record] = []
    for record in reversed(orders.values()):
        if record.doc["modifiedTime"] < since_ms:
            break
        newer.append(record)
    newer.reverse()
    return newer


def order_total_cents(line_items: list[Doc]) -> int:
    """Sum of prices and modifier amounts; weighed items count unitQty/1000."""
    total = 0
    for item in line_items:
        price = _as_int(item.get("price"))
        unit_qty = item.get("unitQty")
        if unit_qty is not None:
            price = price * _as_int(unit_qty) // 1000
        mods = sum(_as_int(m.get("amount")) for m in item.get("modifications") or [])
        total += price + mods
    return total


def _as_int(value: Any) -> int:
    """Clover numbers sometimes arrive as strings; the sandbox stores them as given."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
