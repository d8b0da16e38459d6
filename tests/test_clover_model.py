"""The lenient Clover order model reads what Clover really sends, and says so."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.clover import CloverOrder, NotAnOrder


def test_wrapped_bare_absent_and_null_lists_all_read() -> None:
    wrapped = CloverOrder.parse({"lineItems": {"elements": [{"name": "A"}]}})
    bare = CloverOrder.parse({"lineItems": [{"name": "A"}]})
    absent = CloverOrder.parse({})
    null = CloverOrder.parse({"lineItems": None})
    assert [li.name for li in wrapped.line_items] == ["A"]
    assert [li.name for li in bare.line_items] == ["A"]
    assert absent.line_items == [] and null.line_items == []


def test_numbers_and_booleans_as_strings_are_converted_and_recorded() -> None:
    order = CloverOrder.parse(
        {"total": "1250", "lineItems": [{"price": "300", "refunded": "false"}]}
    )
    assert order.total == 1250
    assert order.line_items[0].price == 300
    assert order.line_items[0].refunded is False
    assert order.coercions == (
        "total: text '1250' read as integer",
        "price: text '300' read as integer",
        "refunded: text 'false' read as boolean",
    )


@pytest.mark.parametrize(
    "odd",
    [
        {"total": "twelve"},
        {"total": [1]},
        {"modifiedTime": True},
        {"title": {"a": 1}},
        {"customers": "C1"},
        {"orderType": 5},
        {"lineItems": [{"modifications": 7, "unitQty": "1.5kg"}]},
    ],
)
def test_one_odd_field_is_dropped_not_fatal(odd: dict[str, Any]) -> None:
    order = CloverOrder.parse({"id": "ORDER1", **odd})
    assert order.id == "ORDER1"
    assert order.coercions, "the dropped field must be recorded"


def test_trailing_spaces_are_trimmed_and_blank_text_is_none() -> None:
    order = CloverOrder.parse({"title": "  uber eats Sam \n", "note": "   "})
    assert order.title == "uber eats Sam"
    assert order.note is None


def test_extra_fields_are_ignored() -> None:
    order = CloverOrder.parse({"id": "X", "brandNewField": {"elements": []}})
    assert order.id == "X"
    assert order.coercions == ()


@pytest.mark.parametrize("value", [[], "order", 3, None, True])
def test_only_a_non_object_is_refused(value: object) -> None:
    with pytest.raises(NotAnOrder):
        CloverOrder.parse(value)


def test_merchant_id_comes_from_the_reference_or_the_field() -> None:
    assert CloverOrder.parse({"merchant": {"id": "M1"}}).owner_id() == "M1"
    assert CloverOrder.parse({"merchantId": "M2"}).owner_id() == "M2"
    assert CloverOrder.parse({}).owner_id() is None


def test_a_list_with_odd_elements_notes_each_coercion_once() -> None:
    order = CloverOrder.parse({"lineItems": [None, {"refunded": 0}]})
    assert [li.refunded for li in order.line_items] == [False]
    assert order.coercions == (
        "line_items: 1 non-object element(s) dropped",
        "refunded: number 0 read as boolean",
    )


def test_clean_values_and_odd_ones_read_alike() -> None:
    clean = CloverOrder.parse({"title": "Sam", "total": 5, "voided": False})
    odd = CloverOrder.parse({"title": " Sam\t", "total": "5", "voided": "no"})
    assert (clean.title, clean.total, clean.voided) == (
        odd.title,
        odd.total,
        odd.voided,
    )
    assert clean.coercions == () and len(odd.coercions) == 2


@pytest.mark.parametrize("sent", [5, "abc", None, ["forged note"], {"a": 1}])
def test_an_order_field_named_coercions_neither_fails_nor_fills_the_notes(
    sent: Any,
) -> None:
    order = CloverOrder.parse({"id": "O1", "total": "5", "coercions": sent})
    assert order.id == "O1" and order.total == 5
    assert order.coercions == ("total: text '5' read as integer",)
    assert CloverOrder.parse({"id": "O1", "coercions": sent}).coercions == ()
