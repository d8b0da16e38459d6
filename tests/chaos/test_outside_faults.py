"""Lockers and Clover failing for a while: everything arrives once they are back."""

from __future__ import annotations

import pytest

from tests.chaos.conftest import StackFactory

SETTLE_TIMEOUT_S = 60.0


@pytest.mark.chaos
@pytest.mark.timeout(180)
async def test_locker_down_then_back_and_another_flapping_lose_nothing(
    chaos_stack: StackFactory,
) -> None:
    async with chaos_stack(orders_per_s=1.0) as stack:
        await stack.wait_for_deliveries(5)
        down, flapping = stack.demo.stores[0], stack.demo.stores[1]
        await stack.locker_faults(down, {"down": True})
        await stack.locker_faults(flapping, {"fail_probability": 0.4, "seed": 7})
        await stack.run_for(12)
        await stack.locker_faults(down, {})
        stack.healed()
        await stack.run_for(4)
        await stack.stop_generating()
        found = await stack.wait_until_settled(SETTLE_TIMEOUT_S)
        await stack.locker_faults(flapping, {})
        await stack.verdict(found)


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
