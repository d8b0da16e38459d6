"""Customer names for orders whose ``customers`` hold only ids, fetched and cached.

Clover's order expansion of customers may carry bare references; the transform needs
a name for the locker screen. Records are cached per merchant and customer for a
while, since regulars order again and every lookup spends Clover budget.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from producers.clover_client import CloverClient


def _needs_name(customer: Any) -> bool:
    """A bare reference: an id (and perhaps a link), nothing a person could read."""
    return (
        isinstance(customer, dict)
        and isinstance(customer.get("id"), str)
        and set(customer) <= {"id", "href"}
    )


class CustomerCache:
    """Fills bare customer references with Clover's customer records."""

    def __init__(
        self, client: CloverClient, ttl_s: float = 600.0, max_entries: int = 10_000
    ) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[float, dict[str, Any]]] = (
            OrderedDict()
        )
        self.lookups = 0

    async def with_names(
        self, merchant_id: str, order: dict[str, Any]
    ) -> dict[str, Any]:
        """The order, with bare customer references replaced by full records."""
        wrapper = order.get("customers")
        elements = wrapper.get("elements") if isinstance(wrapper, dict) else None
        if not isinstance(elements, list) or not any(map(_needs_name, elements)):
            return order
        filled = [await self._fill(merchant_id, item) for item in elements]
        return {**order, "customers": {**wrapper, "elements": filled}}  # type: ignore[dict-item]

    async def _fill(self, merchant_id: str, customer: Any) -> Any:
        if not _needs_name(customer):
            return customer
        record = await self._get(merchant_id, customer["id"])
        return customer if record is None else record

    async def _get(self, merchant_id: str, customer_id: str) -> dict[str, Any] | None:
        key = (merchant_id, customer_id)
        hit = self._entries.get(key)
        if hit is not None and hit[0] > time.monotonic():
            self._entries.move_to_end(key)
            return hit[1]
        self.lookups += 1
        record = await self._client.get_customer(merchant_id, customer_id)
        if record is None:
            return None
        self._entries[key] = (time.monotonic() + self._ttl_s, record)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return record
