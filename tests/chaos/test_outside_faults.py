"""Lockers and Clover failing for a while: everything arrives once they are back."""

from __future__ import annotations

import pytest

from tests.chaos.conftest import StackFactory

SETTLE_TIMEOUT_S = 60.0
LOCKER_DOWN_S = 120


@pytest.mark.chaos
@pytest.mark.timeout(LOCKER_DOWN_S + 240)
async def test_locker_down_for_minutes_then_back_and_another_flapping_lose_nothing(
    chaos_stack: StackFactory,
) -> None:
    """One store's locker answers 503 for two minutes while another fails 40%.

    Two minutes is the longest outage the suite's 15-minute budget allows; delivery
    retries without end (its back-off capped at 2 s here), so a longer outage only
    makes a longer backlog, drained in order when the locker is back.
    """
    async with chaos_stack(orders_per_s=1.0) as stack:
        await stack.wait_for_deliveries(5)
        down, flapping = stack.demo.stores[0], stack.demo.stores[1]
        await stack.locker_faults(down, {"down": True})
        await stack.locker_faults(flapping, {"fail_probability": 0.4, "seed": 7})
        await stack.run_for(LOCKER_DOWN_S)
        await stack.locker_faults(down, {})
        stack.healed()
        await stack.run_for(4)
        await stack.stop_generating()
        found = await stack.wait_until_settled(SETTLE_TIMEOUT_S)
        await stack.locker_faults(flapping, {})
        await stack.verdict(found, extra={"locker down s": LOCKER_DOWN_S})


@pytest.mark.chaos
@pytest.mark.timeout(180)
async def test_clover_failing_resetting_and_hanging_then_back_loses_nothing(
    chaos_stack: StackFactory,
) -> None:
    async with chaos_stack(orders_per_s=1.0) as stack:
        await stack.wait_for_deliveries(5)
        # Windows start together; the first that still applies answers a request:
        # 5xx for 4 s, then connection resets, then requests that hang.
        await stack.clover_faults({"outage": {"kind": "error", "duration_s": 4}})
        await stack.clover_faults({"outage": {"kind": "reset", "duration_s": 8}})
        await stack.clover_faults({"outage": {"kind": "hang"}})
        await stack.run_for(12)
        await stack.clear_clover_faults()
        await stack.run_for(4)
        await stack.stop_generating()
        found = await stack.wait_until_settled(SETTLE_TIMEOUT_S)
        await stack.verdict(found)


@pytest.mark.chaos
@pytest.mark.timeout(180)
async def test_clover_429_storm_loses_nothing(chaos_stack: StackFactory) -> None:
    async with chaos_stack(orders_per_s=1.0) as stack:
        await stack.wait_for_deliveries(5)
        await stack.clover_faults({"storm": {"retry_after_s": 1, "duration_s": 10}})
        await stack.run_for(10)
        await stack.clear_clover_faults()
        await stack.run_for(4)
        await stack.stop_generating()
        found = await stack.wait_until_settled(SETTLE_TIMEOUT_S)
        await stack.verdict(found)


@pytest.mark.chaos
@pytest.mark.timeout(180)
async def test_locker_rejecting_some_orders_for_good_dead_letters_them_with_its_answer(
    chaos_stack: StackFactory,
) -> None:
    """A locker answers 422 to every event of a fifth of its orders.

    Each refused event is in the dead-letter topic with the locker's answer; the
    store's other orders and every other store are delivered as usual.
    """
    async with chaos_stack(orders_per_s=1.0) as stack:
        await stack.wait_for_deliveries(5)
        picky = stack.demo.stores[2]
        rejecting = {"reject_share": 0.2, "reject_status": 422, "seed": 11}
        await stack.locker_faults(picky, rejecting)
        await stack.run_for(12)
        await stack.wait_for_rejections(picky, 3)
        await stack.stop_generating()
        found = await stack.wait_until_settled(SETTLE_TIMEOUT_S)
        answers = [d for d in found.dead_letter_details if "HTTP 422" in d]
        await stack.verdict(
            found,
            expected_dead_letters=len(found.rejected_events),
            expected_dead=found.rejected_orders,
            extra={"rejecting": f"{picky.store_id}: 422 for 20% of its orders"},
        )
    assert found.rejected_events
    assert len(answers) == len(found.rejected_events)
    assert all("order_rejected" in detail for detail in answers)
