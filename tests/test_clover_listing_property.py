"""Listings agree with a plain sort-and-filter, whatever writes came before."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.clover_ids import CloverIds
from sandbox.clover_orderbook import OrderBook
from sandbox.clover_query import parse_filters
from tests.sandboxes import ManualClock

MERCHANT = "PROPERTYMERC1"

writes = st.lists(
    st.tuples(st.sampled_from(["create", "update", "delete"]), st.integers(0, 50)),
    max_size=60,
)
filters = st.lists(
    st.tuples(st.sampled_from([">=", ">", "<=", "<", "="]), st.integers(0, 80)),
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(writes=writes, bounds=filters, clock_steps=st.lists(st.integers(0, 3)))
def test_listing_matches_sorting_every_live_order(
    writes: list[tuple[str, int]],
    bounds: list[tuple[str, int]],
    clock_steps: list[int],
) -> None:
    clock = ManualClock(start_s=0.0)
    book = OrderBook(CloverIds(0), clock)
    book.add_merchant(MERCHANT)
    live: list[str] = []
    for n, (kind, pick) in enumerate(writes):
        clock.advance((clock_steps[n] if n < len(clock_steps) else 0) / 1000)
        if kind == "create" or not live:
            live.append(book.create(MERCHANT, {"title": str(n)})["id"])
        elif kind == "update":
            book.update(MERCHANT, live[pick % len(live)], {"state": str(n)})
        else:
            book.delete(MERCHANT, live.pop(pick % len(live)))
    selection = parse_filters(f"modifiedTime{op}{ms}" for op, ms in bounds)

    listed = book.listing(MERCHANT, selection.keep, selection.since_ms)

    every = [book.get(MERCHANT, order_id) for order_id in live]
    expected = sorted(
        (doc for doc in every if doc is not None and selection.keep(doc)),
        key=lambda doc: (doc["modifiedTime"], doc["id"]),
    )
    assert [doc["id"] for doc in listed] == [doc["id"] for doc in expected]
    times = [doc["modifiedTime"] for doc in listed]
    assert times == sorted(set(times))
