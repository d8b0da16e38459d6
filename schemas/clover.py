"""Lenient models of Clover orders as the REST API really returns them.

Clover's payloads are inconsistent: nested lists come wrapped in ``{"elements": [...]}``
(or bare, absent or ``null``), numbers and booleans sometimes arrive as strings, text
carries trailing spaces and newlines, and fields come and go. These models accept all
of it. A single odd field never fails validation: it is converted when the meaning is
clear (``"1250"`` to 1250) or dropped to ``None`` when not, and either way a line is
added to the order's ``coercions`` so the oddity stays visible.

Parse with `CloverOrder.parse`, which takes any JSON value's Python form; only a value
that is not a JSON object at all is refused (`NotAnOrder`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
)
from pydantic.alias_generators import to_camel

_COERCIONS = "coercions"


class NotAnOrder(ValueError):
    """The value is not a JSON object, so it cannot be a Clover order."""


def _note(info: ValidationInfo, what: str) -> None:
    """Record one coercion in the list the parse call passed as context."""
    context = info.context
    if isinstance(context, dict):
        sink = context.get(_COERCIONS)
        if isinstance(sink, list):
            sink.append(f"{info.field_name}: {what}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value: Any, info: ValidationInfo) -> str | None:
    """Stripped text; numbers become text, anything else is dropped."""
    if value is None:
        return None
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        _note(info, f"number {_short(value)} read as text")
        return str(value)
    _note(info, f"{type(value).__name__} dropped, expected text")
    return None


def _integer_from_text(text: str) -> int | None:
    stripped = text.strip().replace(",", "")
    try:
        number = float(stripped)
    except ValueError:
        return None
    if not math.isfinite(number) or number != int(number):
        return None
    return int(number)


def _integer(value: Any, info: ValidationInfo) -> int | None:
    """An integer from an int, an integral float, or digits in a string."""
    if value is None:
        return None
    if isinstance(value, bool):
        _note(info, f"boolean {value} dropped, expected a number")
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        _note(info, f"float {_short(value)} read as integer")
        return int(value)
    if isinstance(value, str):
        number = _integer_from_text(value)
        if number is not None:
            _note(info, f"text {_short(value)} read as integer")
            return number
    _note(info, f"{_short(value)} dropped, expected an integer")
    return None


_TRUE = frozenset({"true", "yes", "1", "y", "t"})
_FALSE = frozenset({"false", "no", "0", "n", "f", ""})


def _boolean(value: Any, info: ValidationInfo) -> bool | None:
    """A boolean from a bool, 0/1, or a word like "true" or "no"."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        _note(info, f"number {value} read as boolean")
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            _note(info, f"text {_short(value)} read as boolean")
            return word in _TRUE
    _note(info, f"{_short(value)} dropped, expected a boolean")
    return None


def _elements(value: Any, info: ValidationInfo) -> list[dict[str, Any]]:
    """The objects of a Clover list, wrapped in ``elements`` or not."""
    if value is None:
        return []
    if isinstance(value, dict):
        if "elements" in value:
            value = value["elements"]
            if value is None:
                return []
        else:
            _note(info, "single object read as a one-element list")
            return [value]
    if not isinstance(value, list):
        _note(info, f"{type(value).__name__} dropped, expected a list")
        return []
    objects = [item for item in value if isinstance(item, dict)]
    if len(objects) != len(value):
        _note(info, f"{len(value) - len(objects)} non-object element(s) dropped")
    return objects


def _object(value: Any, info: ValidationInfo) -> dict[str, Any] | None:
    """A nested object, or None when it is anything else."""
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        # An unexpanded reference sometimes arrives as the bare id.
        _note(info, "bare id read as a reference")
        return {"id": value}
    _note(info, f"{type(value).__name__} dropped, expected an object")
    return None


Text = Annotated[str | None, BeforeValidator(_text)]
Integer = Annotated[int | None, BeforeValidator(_integer)]
Boolean = Annotated[bool | None, BeforeValidator(_boolean)]


class _Lenient(BaseModel):
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


class CloverReference(_Lenient):
    """A reference to another Clover object (``{"id": ...}``)."""

    id: Text = None


class CloverModification(_Lenient):
    """A modifier applied to a line item ("extra cheese")."""

    name: Text = None
    alternate_name: Text = None
    amount: Integer = Field(None, description="Cents, for one unit.")


class CloverLineItem(_Lenient):
    """One line of an order; quantity shows as repeated lines unless weighed."""

    id: Text = None
    name: Text = None
    alternate_name: Text = None
    price: Integer = Field(None, description="Cents per unit.")
    unit_qty: Integer = Field(None, description="Quantity x 1000, weighed items.")
    unit_name: Text = None
    note: Text = None
    refunded: Boolean = None
    exchanged: Boolean = None
    modifications: Annotated[list[CloverModification], BeforeValidator(_elements)] = (
        Field(default_factory=list)
    )


class CloverOrderType(_Lenient):
    """An order type; only ``id`` unless the order was fetched with the expansion."""

    id: Text = None
    label: Text = None
    label_key: Text = None
    system_order_type_id: Text = None


class CloverPhoneNumber(_Lenient):
    phone_number: Text = None


class CloverEmailAddress(_Lenient):
    email_address: Text = None


class CloverCustomer(_Lenient):
    """A customer record; the order's own copy may hold only the id."""

    id: Text = None
    first_name: Text = None
    last_name: Text = None
    phone_numbers: Annotated[list[CloverPhoneNumber], BeforeValidator(_elements)] = (
        Field(default_factory=list)
    )
    email_addresses: Annotated[list[CloverEmailAddress], BeforeValidator(_elements)] = (
        Field(default_factory=list)
    )


class CloverOrder(_Lenient):
    """A Clover order as fetched, plus the list of what had to be coerced."""

    id: Text = None
    merchant: Annotated[CloverReference | None, BeforeValidator(_object)] = None
    merchant_id: Text = None
    currency: Text = None
    total: Integer = Field(None, description="Cents.")
    title: Text = None
    note: Text = None
    external_reference_id: Text = None
    state: Text = None
    payment_state: Text = None
    created_time: Integer = None
    client_created_time: Integer = None
    modified_time: Integer = None
    deleted: Boolean = None
    voided: Boolean = None
    order_type: Annotated[CloverOrderType | None, BeforeValidator(_object)] = None
    customers: Annotated[list[CloverCustomer], BeforeValidator(_elements)] = Field(
        default_factory=list
    )
    line_items: Annotated[list[CloverLineItem], BeforeValidator(_elements)] = Field(
        default_factory=list
    )
    coercions: tuple[str, ...] = Field(default=(), exclude=True)

    @classmethod
    def parse(cls, data: Any) -> CloverOrder:
        """Read an order leniently; raises `NotAnOrder` only for a non-object."""
        if not isinstance(data, dict):
            raise NotAnOrder(f"expected a JSON object, got {type(data).__name__}")
        sink: list[str] = []
        body = {k: v for k, v in data.items() if k != _COERCIONS}
        order = cls.model_validate(body, context={_COERCIONS: sink})
        if not sink:
            return order
        return order.model_copy(update={"coercions": tuple(sink)})

    def owner_id(self) -> str | None:
        """The merchant id the order names, if it names one."""
        if self.merchant_id:
            return self.merchant_id
        return self.merchant.id if self.merchant is not None else None
