"""Pipeline processes killed with SIGKILL mid-run lose and reorder nothing."""

from __future__ import annotations

import pytest

from tests.chaos.conftest import StackFactory

SETTLE_TIMEOUT_S = 60.0


async def _crash_and_restart(chaos_stack: StackFactory, service: str) -> None:
    async with chaos_stack(orders_per_s=1.0) as stack:
        await stack.wait_for_deliveries(5)
        await stack.run_for(3)
        stack.kill(service)
        await stack.run_for(3)
        stack.restart(service)
        await stack.run_for(6)
        await stack.stop_generating()
        found = await stack.wait_until_settled(SETTLE_TIMEOUT_S)
        await stack.verdict(found)
    assert found.delivered > 0


@pytest.mark.parametrize(
    "suite", ["ci", pytest.param("chaos", marks=pytest.mark.chaos)]
)
@pytest.mark.timeout(180)
async def test_delivery_killed_mid_run_then_restarted_delivers_everything_once(
    chaos_stack: StackFactory, suite: str
) -> None:
    """The one short scenario `make test` runs too ("ci"), so CI guards the suite."""
    await _crash_and_restart(chaos_stack, "deliver")


@pytest.mark.chaos
@pytest.mark.timeout(180)
async def test_stream_worker_killed_mid_run_then_restarted_loses_nothing(
    chaos_stack: StackFactory,
) -> None:
    await _crash_and_restart(chaos_stack, "stream")


@pytest.mark.chaos
@pytest.mark.timeout(180)
async def test_poller_killed_mid_run_then_restarted_loses_nothing(
    chaos_stack: StackFactory,
) -> None:
    await _crash_and_restart(chaos_stack, "poller")
