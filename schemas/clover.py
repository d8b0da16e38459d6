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
from collections.abc import Callable
from typing import Any, ClassVar, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel

_COERCIONS = "coercions"


class NotAnOrder(ValueError):
    """The value is not a JSON object, so it cannot be a Clover order."""


Sink = list[str] | None
Coercer = Callable[[Any, str, Sink], Any]


def _note(sink: Sink, field: str, what: str) -> None:
    if sink is not None:
        sink.append(f"{field}: {what}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value: Any, field: str, sink: Sink) -> str | None:
    """Stripped text; numbers become text, anything else is dropped."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        _note(sink, field, f"number {_short(value)} read as text")
        return str(value)
    _note(sink, field, f"{type(value).__name__} dropped, expected text")
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


def _integer(value: Any, field: str, sink: Sink) -> int | None:
    """An integer from an int, an integral float, or digits in a string."""
    if isinstance(value, bool):
        _note(sink, field, f"boolean {value} dropped, expected a number")
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        _note(sink, field, f"float {_short(value)} read as integer")
        return int(value)
    if isinstance(value, str):
        number = _integer_from_text(value)
        if number is not None:
            _note(sink, field, f"text {_short(value)} read as integer")
            return number
    _note(sink, field, f"{_short(value)} dropped, expected an integer")
    return None


_TRUE = frozenset({"true", "yes", "1", "y", "t"})
_FALSE = frozenset({"false", "no", "0", "n", "f", ""})


def _boolean(value: Any, field: str, sink: Sink) -> bool | None:
    """A boolean from a bool, 0/1, or a word like "true" or "no"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        _note(sink, field, f"number {value} read as boolean")
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            _note(sink, field, f"text {_short(value)} read as boolean")
            return word in _TRUE
    _note(sink, field, f"{_short(value)} dropped, expected a boolean")
    return None


def _elements(value: Any, field: str, sink: Sink) -> list[dict[str, Any]]:
    """The objects of a Clover list, wrapped in ``elements`` or not."""
    if isinstance(value, dict):
        if "elements" in value:
            value = value["elements"]
            if value is None:
                return []
        else:
            _note(sink, field, "single object read as a one-element list")
            return [value]
    if not isinstance(value, list):
        _note(sink, field, f"{type(value).__name__} dropped, expected a list")
        return []
    objects = [item for item in value if isinstance(item, dict)]
    if len(objects) != len(value):
        _note(sink, field, f"{len(value) - len(objects)} non-object element(s) dropped")
    return objects


def _object(value: Any, field: str, sink: Sink) -> dict[str, Any] | None:
    """A nested object, or None when it is anything else."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.strip():
        # An unexpanded reference sometimes arrives as the bare id.
        _note(sink, field, "bare id read as a reference")
        return {"id": value}
    _note(sink, field, f"{type(value).__name__} dropped, expected an object")
    return None


def _coercer_for(annotation: Any) -> Coercer:
    """The coercer a field's declared type calls for."""
    kinds = set(get_args(annotation)) or {annotation}
    if get_origin(annotation) is list:
        return _elements
    if str in kinds:
        return _text
    if bool in kinds:
        return _boolean
    if int in kinds:
        return _integer
    return _object


class _Lenient(BaseModel):
    """Reads a Clover object field by field, never failing on one odd field.

    Each model runs one Python pass over its raw fields (coercing by declared type
    and noting what changed); pydantic then checks the already clean values.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel)

    _coercers: ClassVar[tuple[tuple[str, str, Coercer], ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._coercers = tuple(
            (field.alias or name, name, _coercer_for(field.annotation))
            for name, field in cls.model_fields.items()
            if name != _COERCIONS
        )

    @model_validator(mode="before")
    @classmethod
    def _lenient(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        context = info.context
        sink = context.get(_COERCIONS) if isinstance(context, dict) else None
        clean: dict[str, Any] = {}
        for key, field, coerce in cls._coercers:
            value = data.get(key)
            if value is not None:
                clean[key] = coerce(value, field, sink)
        return clean


class CloverReference(_Lenient):
    """A reference to another Clover object (``{"id": ...}``)."""

    id: str | None = None


class CloverModification(_Lenient):
    """A modifier applied to a line item ("extra cheese")."""

    name: str | None = None
    alternate_name: str | None = None
    amount: int | None = Field(None, description="Cents, for one unit.")


class CloverLineItem(_Lenient):
    """One line of an order; quantity shows as repeated lines unless weighed."""

    name: str | None = None
    alternate_name: str | None = None
    price: int | None = Field(None, description="Cents per unit.")
    unit_qty: int | None = Field(None, description="Quantity x 1000, weighed items.")
    unit_name: str | None = None
    note: str | None = None
    refunded: bool | None = None
    exchanged: bool | None = None
    modifications: list[CloverModification] = Field(default_factory=list)


class CloverOrderType(_Lenient):
    """An order type; only ``id`` unless the order was fetched with the expansion."""

    id: str | None = None
    label: str | None = None
    label_key: str | None = None
    system_order_type_id: str | None = None


class CloverPhoneNumber(_Lenient):
    phone_number: str | None = None


class CloverEmailAddress(_Lenient):
    email_address: str | None = None


class CloverCustomer(_Lenient):
    """A customer record; the order's own copy may hold only the id."""

    first_name: str | None = None
    last_name: str | None = None
    phone_numbers: list[CloverPhoneNumber] = Field(default_factory=list)
    email_addresses: list[CloverEmailAddress] = Field(default_factory=list)


class CloverOrder(_Lenient):
    """A Clover order as fetched, plus the list of what had to be coerced."""

    id: str | None = None
    merchant: CloverReference | None = None
    merchant_id: str | None = None
    currency: str | None = None
    total: int | None = Field(None, description="Cents.")
    title: str | None = None
    note: str | None = None
    external_reference_id: str | None = None
    state: str | None = None
    payment_state: str | None = None
    created_time: int | None = None
    client_created_time: int | None = None
    modified_time: int | None = None
    deleted: bool | None = None
    voided: bool | None = None
    order_type: CloverOrderType | None = None
    customers: list[CloverCustomer] = Field(default_factory=list)
    line_items: list[CloverLineItem] = Field(default_factory=list)
    coercions: tuple[str, ...] = Field(default=(), exclude=True)

    @classmethod
    def parse(cls, data: Any) -> CloverOrder:
        """Read an order leniently; raises `NotAnOrder` only for a non-object."""
        if not isinstance(data, dict):
            raise NotAnOrder(f"expected a JSON object, got {type(data).__name__}")
        sink: list[str] = []
        order = cls.model_validate(data, context={_COERCIONS: sink})
        if not sink:
            return order
        return order.model_copy(update={"coercions": tuple(sink)})

    def owner_id(self) -> str | None:
        """The merchant id the order names, if it names one."""
        if self.merchant_id:
            return self.merchant_id
        return self.merchant.id if self.merchant is not None else None
