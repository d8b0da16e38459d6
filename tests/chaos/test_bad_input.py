"""Poison records and unreliable webhooks: set aside with a reason, nothing lost."""

from __future__ import annotations

import pytest

from lockerlink.broker import make_producer
from schemas.topics import RAW_ORDERS
from tests.chaos.conftest import StackFactory

SETTLE_TIMEOUT_S = 60.0
POISON = (
    b"\xff\xfe\x00 not even text",
    b"{not json",
    b"[1, 2, 3]",
    b'{"merchant_id": 42}',
    b"",
)


@pytest.mark.chaos
@pytest.mark.timeout(180)
async def test_poison_records_in_the_raw_topic_go_to_dead_letters_with_a_reason(
    chaos_stack: StackFactory,
) -> None:
    async with chaos_stack(orders_per_s=1.0) as stack:
        await stack.wait_for_deliveries(5)
        producer = make_producer(stack.stack.bootstrap_servers)
        await producer.start()
        try:
            for n, value in enumerate(POISON):
                merchant = stack.demo.stores[n % len(stack.demo.stores)].merchant_id
                await producer.send_and_wait(RAW_ORDERS, value, key=merchant.encode())
                await stack.run_for(1)
        finally:
            await producer.stop()
        await stack.run_for(4)
        await stack.stop_generating()
        found = await stack.wait_until_settled(SETTLE_TIMEOUT_S)
        await stack.verdict(
            found,
            expected_dead_letters=len(POISON),
            extra={"poison records": len(POISON)},
        )


@pytest.mark.chaos
@pytest.mark.timeout(180)
async def test_dropped_and_duplicated_webhooks_lose_and_repeat_nothing(
    chaos_stack: StackFactory,
) -> None:
    options = ("--webhook-drop", "0.3", "--webhook-duplicates", "0.3")
    async with chaos_stack(orders_per_s=1.0, clover_options=options) as stack:
        await stack.wait_for_deliveries(5)
        await stack.run_for(15)
        await stack.stop_generating()
        found = await stack.wait_until_settled(SETTLE_TIMEOUT_S)
        await stack.verdict(
            found, extra={"webhook drop": 0.3, "webhook duplicates": 0.3}
        )
