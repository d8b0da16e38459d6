"""Tokens rotating under crashes, competing refreshers and a Redis restart.

Access tokens live 20 s, so every merchant's token is refreshed several times
during a scenario; Clover's own refresh log proves no refresh token was spent
twice (a spent one answers ``reused``).
"""

from __future__ import annotations

import pytest

from lockerlink.devstack import Service
from lockerlink.embedded import free_port
from tests.chaos.conftest import StackFactory

SETTLE_TIMEOUT_S = 60.0
SHORT_TOKENS = ("--access-lifetime-s", "20")
BURST_ORDERS_PER_S = 8.0
BURST_S = 16.0
REFRESH_SOON = {
    "LOCKERLINK_TOKEN_REFRESH_MARGIN_S": "6",
    "LOCKERLINK_TOKEN_REFRESH_SPREAD_S": "4",
}


@pytest.mark.chaos
@pytest.mark.timeout(240)
async def test_token_services_killed_tripled_and_redis_restarted_never_reuse_a_token(
    chaos_stack: StackFactory,
) -> None:
    options = {
        "orders_per_s": 1.0,
        "clover_options": SHORT_TOKENS,
        "environ": REFRESH_SOON,
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
    }
    async with chaos_stack(**options) as stack:
        await stack.wait_for_deliveries(5)
        await stack.run_for(8)
        stack.kill("token-service")
        await stack.run_for(2)
        stack.restart("token-service")
        for n in (2, 3):
            port = str(free_port())
            stack.start_extra(
                Service(
                    f"token-service-{n}",
                    ("token-service",),
                    env={"LOCKERLINK_TOKEN_SERVICE_PORT": port},
                )
            )
        await stack.run_for(20)
        redis = stack.stack.redis
        assert redis is not None, "the scenario needs its own Redis to restart"
        redis.kill()
        await stack.run_for(2)
        redis.start()
        stack.healed()
        await stack.run_for(20)
        await stack.stop_generating()
        found = await stack.wait_until_settled(SETTLE_TIMEOUT_S)
        await stack.verdict(found)
    assert found.refresh_calls >= len(stack.demo.stores)


@pytest.mark.chaos
@pytest.mark.timeout(180)
async def test_clover_rejecting_valid_tokens_for_a_while_loses_nothing(
    chaos_stack: StackFactory,
) -> None:
    options = {
        "orders_per_s": 1.0,
        "clover_options": SHORT_TOKENS,
        "environ": REFRESH_SOON,
    }
    async with chaos_stack(**options) as stack:
        await stack.wait_for_deliveries(5)
        await stack.clover_faults({"reject_access_tokens": True})
        await stack.run_for(6)
        await stack.clear_clover_faults()
        await stack.run_for(6)
        await stack.stop_generating()
        found = await stack.wait_until_settled(SETTLE_TIMEOUT_S)
        await stack.verdict(found)


@pytest.mark.chaos
@pytest.mark.timeout(240)
async def test_token_service_killed_between_clovers_refresh_answer_and_its_write(
    chaos_stack: StackFactory,
) -> None:
    """Clover spent the refresh token and issued a pair nobody stored.

    Clover serves the token service's refresh, then keeps its answer back; the
    token service is SIGKILLed while waiting for it. Whoever refreshes that merchant
    next (the restarted service, or the poller's own vault) finds the refresh marked
    in flight once the dead process's lease (7 s here) ends and recovers with the
    refresh token Redis still holds; no refresh token is spent twice.

    Access tokens live 80 s and the token service refreshes them 64-68 s before
    they expire, before the poller's vault would (it wants 60 s of validity).
    """
    options = {
        "orders_per_s": 1.0,
        "clover_options": ("--access-lifetime-s", "80"),
        "environ": {
            "LOCKERLINK_TOKEN_REFRESH_MARGIN_S": "64",
            "LOCKERLINK_TOKEN_REFRESH_SPREAD_S": "4",
            "LOCKERLINK_TOKEN_REFRESH_LEASE_S": "7",
            "LOCKERLINK_CLOVER_TIMEOUT_S": "3",
        },
    }
    async with chaos_stack(**options) as stack:
        await stack.wait_for_deliveries(5)
        await stack.hold_clover_answer("refresh", caller="token-service")
        stack.kill("token-service")
        await stack.clear_clover_faults()  # its answer is lost: nobody waits for it
        stack.restart("token-service")
        await stack.run_for(25)
        await stack.stop_generating()
        found = await stack.wait_until_settled(SETTLE_TIMEOUT_S)
        recovered = await stack.clover_calls("recovery", "ok")
        await stack.verdict(found, extra={"recoveries": recovered})
    assert recovered >= 1


@pytest.mark.chaos
@pytest.mark.timeout(240)
async def test_tokens_expiring_during_a_burst_of_orders_lose_nothing(
    chaos_stack: StackFactory,
) -> None:
    """Eight orders a second per merchant while access tokens run out.

    Access tokens live 8 s, so they rotate several times during the burst; twice
    Clover also ends every live token ahead of its stated expiration (as a clock
    jump would), so calls in flight meet 401 "expired" and must refresh and retry.
    """
    options = {
        "orders_per_s": 1.0,
        "clover_options": ("--access-lifetime-s", "8"),
        "environ": {
            "LOCKERLINK_TOKEN_REFRESH_MARGIN_S": "2",
            "LOCKERLINK_TOKEN_REFRESH_SPREAD_S": "1",
        },
    }
    async with chaos_stack(**options) as stack:
        await stack.wait_for_deliveries(5)
        await stack.pace_orders(BURST_ORDERS_PER_S)
        for _ in range(2):
            await stack.run_for(BURST_S / 2)
            await stack.clover_faults({"expire_access_tokens": True})
        stack.healed()
        await stack.stop_generating()
        found = await stack.wait_until_settled(SETTLE_TIMEOUT_S * 2)
        expired = await stack.clover_calls(outcome="expired")
        await stack.verdict(
            found,
            extra={
                "burst": f"{BURST_ORDERS_PER_S:g}/s per merchant for {BURST_S:g} s",
                "expired-token answers": expired,
            },
        )
    assert expired > 0
    assert found.refresh_calls >= 2 * len(stack.demo.stores)
