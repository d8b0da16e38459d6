"""The shared Clover budget: limits kept under a flood, webhook fetches first."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import redis.asyncio as aioredis

from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from producers.budget import BudgetLimits, CloverBudget, Priority, PriorityGate
from producers.clover_client import CloverClient
from producers.health import Backoff, CloverBreaker, log_only
from sandbox.clover_config import CloverConfig
from tests.poller_support import connected_vault, poller_settings
from tests.sandboxes import SandboxFactory


async def test_a_flood_from_two_processes_stays_within_clovers_limits(
    clover_sandbox_factory: SandboxFactory,
    settings: Settings,
    redis: aioredis.Redis,
    keyspace: KeySpace,
) -> None:
    merchants = ("FLOODMERCH01", "FLOODMERCH02", "FLOODMERCH03")
    sandbox = await clover_sandbox_factory(CloverConfig(merchant_ids=merchants))
    test_settings = poller_settings(settings, sandbox)
    vault = await connected_vault(
        test_settings, redis, keyspace, sandbox, list(merchants)
    )
    limits = BudgetLimits(
        app_requests_per_s=40,
        app_concurrency=8,
        merchant_requests_per_s=12,
        merchant_concurrency=4,
    )
    sessions = [aiohttp.ClientSession() for _ in range(2)]
    # Two clients with their own budgets and sessions: two processes sharing Redis
    # and the app's limits. Leases give each merchant to one of them.
    clients = [
        CloverClient(
            session,
            str(sandbox.base_url),
            vault,
            CloverBudget(redis, keyspace, limits),
            CloverBreaker(log_only, Backoff()),
        )
        for session in sessions
    ]
    stop_at = time.monotonic() + 1.5

    async def hammer(
        client: CloverClient, merchant_id: str, priority: Priority
    ) -> None:
        while time.monotonic() < stop_at:
            await client.list_orders(
                merchant_id, modified_since_ms=0, offset=0, limit=10, priority=priority
            )

    try:
        await asyncio.gather(
            *(
                hammer(client, merchant_id, priority)
                for client, held in (
                    (clients[0], merchants[:2]),
                    (clients[1], merchants[2:]),
                )
                for merchant_id in held
                for priority in (Priority.POLL, Priority.WEBHOOK) * 4
            )
        )
    finally:
        for session in sessions:
            await session.close()
        await vault.close()

    served = sandbox.calls.count("orders.list", outcome="ok")
    assert served >= 40  # the flood did reach Clover, for more than a second
    assert sandbox.calls.count("orders.list", outcome="rate_limited") == 0
    assert sum(c.rate_limited for c in clients) == 0


async def test_a_waiting_webhook_fetch_goes_before_waiting_polls() -> None:
    gate = PriorityGate(1)
    order: list[str] = []
    holder = asyncio.Event()

    async def take(name: str, priority: Priority) -> None:
        async with gate.slot(priority):
            order.append(name)
            if name == "first":
                await holder.wait()

    first = asyncio.create_task(take("first", Priority.POLL))
    await asyncio.sleep(0)
    waiting = [
        asyncio.create_task(take("poll-1", Priority.POLL)),
        asyncio.create_task(take("poll-2", Priority.POLL)),
        asyncio.create_task(take("webhook", Priority.WEBHOOK)),
    ]
    await asyncio.sleep(0)
    holder.set()
    await asyncio.gather(first, *waiting)
    assert order == ["first", "webhook", "poll-1", "poll-2"]
