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
