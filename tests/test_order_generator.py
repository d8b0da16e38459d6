"""The seeded order generator: reproducible, every shape, updates and deletions."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from sandbox.clover import CloverSandbox
from sandbox.clover_config import CloverConfig
from sandbox.clover_ids import CloverIds
from sandbox.clover_orderbook import OrderBook
from sandbox.order_generator import GeneratorConfig, OrderGenerator
from tests.sandboxes import ManualClock, SandboxFactory

MERCHANT = "GENERATORMER1"


def _generate(seed: int, count: int) -> tuple[OrderBook, OrderGenerator]:
    book = OrderBook(CloverIds(seed), ManualClock())
    book.add_merchant(MERCHANT)
    generator = OrderGenerator(book, GeneratorConfig(seed=seed))
    for _ in range(count):
        generator.step(MERCHANT)
    return book, generator


def _dump(book: OrderBook) -> str:
    return json.dumps(book.listing(MERCHANT, lambda _: True), sort_keys=True)


def test_same_seed_gives_the_same_orders_and_another_seed_does_not() -> None:
    assert _dump(_generate(5, 50)[0]) == _dump(_generate(5, 50)[0])
    assert _dump(_generate(5, 50)[0]) != _dump(_generate(6, 50)[0])


def test_every_channel_and_platform_style_appears() -> None:
    _, generator = _generate(1, 300)
    channels = Counter(order.channel for order in generator.generated)
    styles = Counter(order.style for order in generator.generated if order.style)
    platforms = {order.platform for order in generator.generated if order.platform}
    assert set(channels) == {"dine_in", "pick_up", "take_out", "platform"}
    assert set(styles) == {"note", "title", "order_type"}
    assert platforms == {
        "uber_eats",
        "doordash",
        "grubhub",
        "skipthedishes",
        "postmates",
        "eat24",
    }


def test_platform_orders_carry_the_platform_where_their_style_says() -> None:
    book, generator = _generate(2, 300)
    for intent in generator.generated:
        doc = book.get(MERCHANT, intent.order_id)
        if intent.style is None or doc is None:
            continue
        if intent.style == "note":
            lines = doc["note"].split("\n")
            assert lines[2] == f"DELIVERY {intent.pickup_time}"
            assert lines[0].startswith(str(intent.customer_first_name).upper())
        elif intent.style == "title":
            assert doc["orderType"]["systemOrderTypeId"] == "PICK-UP-TYPE"
            assert str(intent.customer_first_name).lower() in doc["title"].lower()
        else:
            assert doc["orderType"]["systemOrderTypeId"] == "DEFAULT"
            assert doc["externalReferenceId"]
            (customer,) = doc["customers"]
            assert customer["lastName"] == intent.customer_last_name
            if intent.platform == "uber_eats":
                code = doc["externalReferenceId"][-5:].upper()
                assert intent.courier_code == code


def test_orders_show_quantities_weights_modifiers_and_odd_types() -> None:
    book, _ = _generate(3, 200)
    orders = book.listing(MERCHANT, lambda _: True)
    items = [item for order in orders for item in order["lineItems"]]
    names_per_order = [
        Counter((i["name"], str(i["price"])) for i in order["lineItems"])
        for order in orders
    ]
    assert any(count > 1 for names in names_per_order for count in names.values())
    assert any("unitQty" in item for item in items)
    assert any(item.get("modifications") for item in items)
    assert any(isinstance(item["price"], str) for item in items)
    assert any(item["isRevenue"] in ("true", "True") for item in items)
    assert any(any(ord(ch) > 0x2000 for ch in item["name"]) for item in items)
    assert any(item["name"].endswith(" ") for item in items)
    assert any(order.get("payments") for order in orders)


def test_later_steps_update_and_delete_earlier_orders() -> None:
    book, generator = _generate(4, 200)
    kinds = Counter(version.kind for version in book.versions())
    assert kinds["CREATE"] == 200
    assert kinds["UPDATE"] > 0
    assert kinds["DELETE"] > 0
    deleted = {v.order_id for v in book.versions() if v.kind == "DELETE"}
    assert all(book.get(MERCHANT, order_id) is None for order_id in deleted)
    assert len(generator.generated) == 200


async def test_sandbox_generates_orders_at_the_configured_rate_while_running(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    config = CloverConfig(generator=GeneratorConfig(orders_per_s=200, tick_s=0.01))
    sandbox: CloverSandbox = await clover_sandbox_factory(config)
    other = sandbox.add_merchant()
    while len({o.merchant_id for o in sandbox.generator.generated}) < 2:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    merchants = {order.merchant_id for order in sandbox.generator.generated}
    assert merchants == {sandbox.merchant_ids[0], other}
