"""A merchant's order types: Clover's system ones and ones named after platforms."""

from __future__ import annotations

import random
from typing import Any

Doc = dict[str, Any]

_SYSTEM_TYPES: dict[str, tuple[str, str, str]] = {
    "dine_in": ("Dine In", "com.clover.order.type.dine_in", "DINE-IN-TYPE"),
    "pick_up": ("Pick Up", "com.clover.order.type.pick_up", "PICK-UP-TYPE"),
    "take_out": ("To Go", "com.clover.order.type.take_out", "TAKE-OUT-TYPE"),
}


class OrderTypes:
    """Each merchant's order types, made on first use and the same afterwards."""

    def __init__(self, chooser: random.Random) -> None:
        self._random = chooser
        self._made: dict[tuple[str, str], Doc] = {}

    def system(self, merchant_id: str, channel: str) -> Doc:
        """Dine In, Pick Up or To Go, with Clover's label key and system id."""
        label, label_key, system_id = _SYSTEM_TYPES[channel]
        return self._type(merchant_id, channel, label, label_key, system_id)

    def custom(self, merchant_id: str, label: str) -> Doc:
        """A type the restaurant made itself, such as one named after a platform."""
        return self._type(merchant_id, f"custom:{label}", label, None, "DEFAULT")

    def _type(
        self,
        merchant_id: str,
        key: str,
        label: str,
        label_key: str | None,
        system_id: str,
    ) -> Doc:
        found = self._made.get((merchant_id, key))
        if found is None:
            found = {"id": f"OT{self._random.randrange(10**11):011d}", "label": label}
            if label_key:
                found["labelKey"] = label_key
            found["systemOrderTypeId"] = system_id
            self._made[(merchant_id, key)] = found
        return dict(found)
