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
from types import GenericAlias
from typing import TYPE_CHECKING, Annotated, Any, Union, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
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


# Up to this many digits a float holds the number exactly, so `int` reads it the same.
_EXACT_DIGITS = 15


def _integer_from_text(text: str) -> int | None:
    stripped = text.strip().replace(",", "")
    if stripped.isascii() and stripped.isdigit() and len(stripped) <= _EXACT_DIGITS:
        return int(stripped)
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


def _sink(info: ValidationInfo) -> Sink:
    context = info.context
    return context.get(_COERCIONS) if isinstance(context, dict) else None


def _odd(coerce: Coercer) -> Any:
    """A union branch handing a value the fast branches refused to ``coerce``."""

    def read(value: Any, info: ValidationInfo) -> Any:
        context = info.context  # `_sink`, inlined: every odd value comes here
        sink = context.get(_COERCIONS) if isinstance(context, dict) else None
        return coerce(value, info.field_name or "?", sink)

    return Annotated[Any, PlainValidator(read)]


def _union(*branches: Any) -> Any:
    """A field type whose branches are tried left to right."""
    return Annotated[Union[branches], Field(union_mode="left_to_right")]  # noqa: UP007


def _lenient(*fast: Any, odd: Any) -> Any:
    """A field type: the fast (pydantic-core) branches, null, then ``odd``.

    So a clean value never leaves pydantic-core, and only an odd one costs a Python
    call (which may note a coercion).
    """
    return _union(*fast, type(None), odd)


# Text needing no trimming: printable ASCII at both ends. Anything else (trailing
# spaces, blank, non-ASCII ends, numbers) goes to `_text`, which trims in Python.
_CLEAN_TEXT = Annotated[StrictStr, StringConstraints(pattern=r"^[!-~](?s:.*[!-~])?$")]


def _one(model: type[BaseModel]) -> Any:
    """A nested object field: the object, or what `_object` makes of the value."""

    def read(value: Any, info: ValidationInfo) -> Any:
        found = _object(value, info.field_name or "?", _sink(info))
        return (
            None if found is None else model.model_validate(found, context=info.context)
        )

    return _lenient(model, odd=Annotated[Any, PlainValidator(read)])


def _many(model: type[BaseModel]) -> Any:
    """A Clover list field: `_elements` finds the objects, pydantic-core reads them.

    One Python call per list, never a union: a branch that failed half way through
    a list would have noted its elements' coercions once already. A clean list
    (``{"elements": [objects]}``) skips `_elements`; either way the objects are read
    by the field's own list schema, inside the same validation.
    """
    objects = cast(Any, GenericAlias(list, (model,)))

    def read(
        value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        if type(value) is dict:
            found = value.get("elements")
            if type(found) is list:
                for item in found:
                    if type(item) is not dict:
                        break
                else:
                    return handler(found) if found else []
        if value is None:
            return []
        found = _elements(value, info.field_name or "?", _sink(info))
        return handler(found) if found else found

    return Annotated[objects, WrapValidator(read)]


if TYPE_CHECKING:
    Text = str | None
    Integer = int | None
    Boolean = bool | None
else:
    Text = _lenient(_CLEAN_TEXT, odd=_odd(_text))
    Integer = _lenient(StrictInt, odd=_odd(_integer))
    Boolean = _lenient(StrictBool, odd=_odd(_boolean))


class _Lenient(BaseModel):
    """Reads a Clover object field by field, never failing on one odd field.

    Every field's type is a left-to-right union (see `_lenient`): clean values are
    checked by pydantic-core alone; an odd one goes to the field's Python coercer,
    which converts or drops it and notes what it did. Notes come in field order,
    nested objects depth first.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel)


class CloverReference(_Lenient):
    """A reference to another Clover object (``{"id": ...}``)."""

    id: Text = None


class CloverModification(_Lenient):
    """A modifier applied to a line item ("extra cheese")."""

    name: Text = None
    alternate_name: Text = None
    amount: Integer = Field(None, description="Cents, for one unit.")


if TYPE_CHECKING:
    Modifications = list[CloverModification]
    Reference = CloverReference | None
else:
    Modifications = _many(CloverModification)
    Reference = _one(CloverReference)


class CloverLineItem(_Lenient):
    """One line of an order; quantity shows as repeated lines unless weighed."""

    name: Text = None
    alternate_name: Text = None
    price: Integer = Field(None, description="Cents per unit.")
    unit_qty: Integer = Field(None, description="Quantity x 1000, weighed items.")
    unit_name: Text = None
    note: Text = None
    refunded: Boolean = None
    exchanged: Boolean = None
    modifications: Modifications = Field(default_factory=list)


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


if TYPE_CHECKING:
    PhoneNumbers = list[CloverPhoneNumber]
    EmailAddresses = list[CloverEmailAddress]
else:
    PhoneNumbers = _many(CloverPhoneNumber)
    EmailAddresses = _many(CloverEmailAddress)


class CloverCustomer(_Lenient):
    """A customer record; the order's own copy may hold only the id."""

    first_name: Text = None
    last_name: Text = None
    phone_numbers: PhoneNumbers = Field(default_factory=list)
    email_addresses: EmailAddresses = Field(default_factory=list)


if TYPE_CHECKING:
    OrderType = CloverOrderType | None
    Customers = list[CloverCustomer]
    LineItems = list[CloverLineItem]
else:
    OrderType = _one(CloverOrderType)
    Customers = _many(CloverCustomer)
    LineItems = _many(CloverLineItem)


class CloverOrder(_Lenient):
    """A Clover order as fetched, plus the list of what had to be coerced."""

    id: Text = None
    merchant: Reference = None
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
    order_type: OrderType = None
    customers: Customers = Field(default_factory=list)
    line_items: LineItems = Field(default_factory=list)
    # Not a field: an order whose JSON happens to hold "coercions" must not be
    # able to fill it, nor fail on it.
    _coerced: tuple[str, ...] = PrivateAttr(default=())

    @property
    def coercions(self) -> tuple[str, ...]:
        """What had to be converted or dropped to read the order, in field order."""
        return self._coerced

    @classmethod
    def parse(cls, data: Any) -> CloverOrder:
        """Read an order leniently; raises `NotAnOrder` only for a non-object."""
        if not isinstance(data, dict):
            raise NotAnOrder(f"expected a JSON object, got {type(data).__name__}")
        sink: list[str] = []
        order: CloverOrder = cls.__pydantic_validator__.validate_python(
            data, context={_COERCIONS: sink}
        )
        if sink:
            order._coerced = tuple(sink)
        return order

    def owner_id(self) -> str | None:
        """The merchant id the order names, if it names one."""
        if self.merchant_id:
            return self.merchant_id
        return self.merchant.id if self.merchant is not None else None
