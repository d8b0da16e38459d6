"""The Clover sandbox's orders REST API: filters, expansions, pages, customers."""

from __future__ import annotations

import random
from typing import Any

import aiohttp

from sandbox.clover import CloverSandbox
from sandbox.clover_config import CloverConfig
from sandbox.clover_limits import RateLimits
from tests.clover_client import MerchantClient
from tests.sandboxes import ManualClock, SandboxFactory


def _order(title: str, items: int = 1, **extra: Any) -> dict[str, Any]:
    line_items = [
        {
            "name": f"Item {n}",
            "price": 450,
            "modifications": [{"name": "extra cheese", "amount": 75}],
        }
        for n in range(items)
    ]
    return {
        "title": title,
        "state": "open",
        "orderType": {
            "id": "OT1",
            "label": "Pick Up",
            "systemOrderTypeId": "PICK-UP-TYPE",
        },
        "lineItems": line_items,
        **extra,
    }


async def test_listing_wraps_elements_and_expands_on_request(
    clover_sandbox: CloverSandbox,
) -> None:
    merchant = clover_sandbox.merchant_ids[0]
    customer = {"firstName": "Ana", "lastName": "Souza", "phoneNumber": "555 0101"}
    payment = {"amount": 525, "result": "SUCCESS"}
    clover_sandbox.orders.create(
        merchant, _order("ana", customers=[customer], payments=[payment])
    )
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, merchant)
        _, bare, headers = await client.get("/orders")
        expand = "lineItems,lineItems.modifications,orderType,customers,payments"
        _, full, _ = await client.get("/orders", [("expand", expand)])
    assert "modifiedTime" in headers["X-Clover-Allowed-Filter-Fields"]
    (plain,) = bare["elements"]
    assert "lineItems" not in plain and plain["orderType"] == {"id": "OT1"}
    assert "payments" not in plain and "customers" not in plain
    (order,) = full["elements"]
    assert order["orderType"]["label"] == "Pick Up"
    (item,) = order["lineItems"]["elements"]
    assert item["modifications"]["elements"][0]["amount"] == 75
    assert order["total"] == 525
    assert order["payments"] == {"elements": [payment]}
    assert order["customers"]["elements"] == [
        {"id": order["customers"]["elements"][0]["id"]}
    ]


async def test_customer_record_is_read_by_id(clover_sandbox: CloverSandbox) -> None:
    merchant = clover_sandbox.merchant_ids[0]
    customer = {"firstName": "Ana", "lastName": "Souza", "phoneNumber": "555 0101"}
    created = clover_sandbox.orders.create(
        merchant, _order("ana", customers=[customer])
    )
    customer_id = created["customers"][0]["id"]
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, merchant)
        status, found, _ = await client.get(f"/customers/{customer_id}")
        missing, _, _ = await client.get("/customers/NOSUCHCUSTOMR")
    assert status == 200 and found["lastName"] == "Souza"
    assert missing == 404


async def test_expanded_nested_lists_are_cut_at_100(
    clover_sandbox: CloverSandbox,
) -> None:
    merchant = clover_sandbox.merchant_ids[0]
    created = clover_sandbox.orders.create(merchant, _order("big", items=130))
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, merchant)
        _, order, _ = await client.get(
            f"/orders/{created['id']}", {"expand": "lineItems"}
        )
        _, items, _ = await client.get(
            f"/orders/{created['id']}/line_items", {"limit": "1000"}
        )
    assert len(order["lineItems"]["elements"]) == 100
    assert len(items["elements"]) == 130


async def test_modified_time_and_id_filters_are_anded(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    clock = ManualClock()
    sandbox = await clover_sandbox_factory(clock=clock)
    merchant = sandbox.merchant_ids[0]
    made = []
    for n in range(5):
        made.append(sandbox.orders.create(merchant, _order(f"o{n}")))
        clock.advance(1)
    times = [order["modifiedTime"] for order in made]
    ids = [order["id"] for order in made]

    async def ids_for(*filters: str) -> list[str]:
        query = [("filter", f) for f in filters] + [("orderBy", "modifiedTime ASC")]
        _, body, _ = await client.get("/orders", query)
        return [order["id"] for order in body["elements"]]

    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, sandbox, merchant)
        assert await ids_for(f"modifiedTime>={times[2]}") == ids[2:]
        assert await ids_for(f"modifiedTime>{times[2]}") == ids[3:]
        assert await ids_for(f"modifiedTime<={times[1]}") == ids[:2]
        assert await ids_for(f"modifiedTime<{times[1]}") == ids[:1]
        assert await ids_for(f"modifiedTime={times[4]}") == ids[4:]
        assert await ids_for(f"id in ('{ids[0]}','{ids[3]}')") == [ids[0], ids[3]]
        assert await ids_for(
            f"id in ('{ids[0]}', '{ids[3]}')", f"modifiedTime>{times[0]}"
        ) == [ids[3]]


async def test_unsupported_filter_and_bad_paging_get_400(
    clover_sandbox: CloverSandbox,
) -> None:
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, clover_sandbox.merchant_ids[0])
        bad_filter, body, _ = await client.get("/orders", {"filter": "title=x"})
        bad_limit, _, _ = await client.get("/orders", {"limit": "many"})
        bad_offset, _, _ = await client.get("/orders", {"offset": "-1"})
        bad_expand, _, _ = await client.get("/orders", {"expand": "everything"})
        # Clover documents the ids of an ``in`` list in single quotes only.
        unquoted, _, _ = await client.get("/orders", {"filter": "id in (A1,B2)"})
        huge, _, _ = await client.get(
            "/orders", {"filter": "modifiedTime>=" + "9" * 5000}
        )
    assert (bad_filter, bad_limit, bad_offset, bad_expand) == (400, 400, 400, 400)
    assert huge == unquoted == 400
    assert "modifiedTime" in body["message"]


async def test_limit_defaults_to_100_and_is_capped_at_the_maximum(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    sandbox = await clover_sandbox_factory(CloverConfig(max_page_limit=150))
    merchant = sandbox.merchant_ids[0]
    for n in range(160):
        sandbox.orders.create(merchant, _order(f"o{n}", items=0))
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, sandbox, merchant)
        _, default, _ = await client.get("/orders")
        _, capped, _ = await client.get("/orders", {"limit": "1000"})
        _, tail, _ = await client.get("/orders", {"limit": "100", "offset": "150"})
    assert len(default["elements"]) == 100
    assert len(capped["elements"]) == 150
    assert len(tail["elements"]) == 10


async def test_deleted_and_unknown_orders_are_404_and_leave_listings(
    clover_sandbox: CloverSandbox,
) -> None:
    merchant = clover_sandbox.merchant_ids[0]
    kept = clover_sandbox.orders.create(merchant, _order("kept"))
    gone = clover_sandbox.orders.create(merchant, _order("gone"))
    clover_sandbox.orders.delete(merchant, gone["id"])
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, merchant)
        deleted, _, _ = await client.get(f"/orders/{gone['id']}")
        unknown, _, _ = await client.get("/orders/NOSUCHORDER01")
        _, listing, _ = await client.get("/orders")
    assert (deleted, unknown) == (404, 404)
    assert [order["id"] for order in listing["elements"]] == [kept["id"]]
    kinds = [
        v.kind for v in clover_sandbox.orders.versions() if v.order_id == gone["id"]
    ]
    assert kinds == ["CREATE", "DELETE"]


async def test_a_token_reads_only_its_own_merchant(
    clover_sandbox: CloverSandbox,
) -> None:
    own = clover_sandbox.merchant_ids[0]
    other = clover_sandbox.add_merchant()
    clover_sandbox.orders.create(other, _order("theirs"))
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, own)
        client.base = client.base.replace(own, other)
        status, body, _ = await client.get("/orders")
    assert status == 401 and body["message"]
    assert clover_sandbox.calls.count("orders.list", outcome="wrong_merchant") == 1


async def test_keyset_paging_misses_and_repeats_nothing_while_orders_change(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    """Walk with ``modifiedTime>last seen`` while orders are added and changed.

    Every order version that exists when the walk ends with an empty page and that
    is newer than the start cursor must have been seen, and no version twice.
    """
    clover_sandbox = await clover_sandbox_factory(
        CloverConfig(limits=RateLimits.lifted())
    )
    merchant = clover_sandbox.merchant_ids[0]
    book = clover_sandbox.orders
    ids = [book.create(merchant, _order(f"o{n}"))["id"] for n in range(60)]
    chaos = random.Random(7)
    seen: list[tuple[str, int]] = []
    cursor_ms = 0
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, merchant)
        while True:
            _, page, _ = await client.get(
                "/orders",
                {
                    "filter": f"modifiedTime>{cursor_ms}",
                    "orderBy": "modifiedTime ASC",
                    "limit": "7",
                },
            )
            seen += [(o["id"], o["modifiedTime"]) for o in page["elements"]]
            if not page["elements"]:
                break
            cursor_ms = page["elements"][-1]["modifiedTime"]
            if len(seen) < 120:
                for changed in chaos.sample(ids, 3):
                    book.update(
                        merchant, changed, {"state": chaos.choice(["open", "locked"])}
                    )
                ids.append(book.create(merchant, _order("late"))["id"])
    assert len(seen) == len(set(seen))
    latest = {
        doc["id"]: doc["modifiedTime"] for doc in book.listing(merchant, lambda _: True)
    }
    assert set(latest.items()) <= set(seen)


async def test_listing_is_newest_creation_first_unless_ordered_otherwise(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    clock = ManualClock()
    sandbox = await clover_sandbox_factory(clock=clock)
    merchant = sandbox.merchant_ids[0]
    ids = []
    for n in range(4):
        ids.append(sandbox.orders.create(merchant, _order(f"o{n}"))["id"])
        clock.advance(1)
    sandbox.orders.update(merchant, ids[1], {"state": "locked"})

    async def ids_for(order_by: str | None) -> tuple[int, list[str]]:
        query = {} if order_by is None else {"orderBy": order_by}
        status, body, _ = await client.get("/orders", query)
        return status, [o["id"] for o in body.get("elements", [])]

    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, sandbox, merchant)
        # As Clover documents: descending by creation time when not asked.
        assert await ids_for(None) == (200, ids[::-1])
        assert await ids_for("createdTime ASC") == (200, ids)
        assert await ids_for("modifiedTime ASC") == (200, [ids[0], *ids[2:], ids[1]])
        assert await ids_for("modifiedTime DESC") == (
            200,
            [ids[1], *ids[:1:-1], ids[0]],
        )
        assert (await ids_for("title ASC"))[0] == 400
        assert (await ids_for("modifiedTime SIDEWAYS"))[0] == 400


async def test_an_updated_order_is_served_in_its_new_version(
    clover_sandbox: CloverSandbox,
) -> None:
    merchant = clover_sandbox.merchant_ids[0]
    order = clover_sandbox.orders.create(merchant, _order("first"))
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, merchant)
        expand = {"expand": "lineItems"}
        _, before, _ = await client.get(f"/orders/{order['id']}", expand)
        clover_sandbox.orders.update(
            merchant, order["id"], {"state": "locked"}, add_line_items=[{"name": "Tea"}]
        )
        _, after, _ = await client.get(f"/orders/{order['id']}", expand)
        _, listed, _ = await client.get("/orders", expand)
    assert before["state"] == "open" and len(before["lineItems"]["elements"]) == 1
    assert after["state"] == "locked" and len(after["lineItems"]["elements"]) == 2
    assert listed["elements"] == [after]


async def test_listing_follows_modified_time_after_updates_and_deletions(
    clover_sandbox: CloverSandbox,
) -> None:
    merchant = clover_sandbox.merchant_ids[0]
    book = clover_sandbox.orders
    first, second, third = (book.create(merchant, _order(t)) for t in "abc")
    book.update(merchant, first["id"], {"state": "locked"})
    book.delete(merchant, second["id"])
    since = f"modifiedTime>={first['modifiedTime']}"
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, merchant)
        _, everything, _ = await client.get("/orders")
        _, bounded, _ = await client.get("/orders", {"filter": since})
    expected = [third["id"], first["id"]]
    assert [o["id"] for o in everything["elements"]] == expected
    assert [o["id"] for o in bounded["elements"]] == expected
