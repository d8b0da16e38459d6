"""The poller's /healthz, /readyz and /metrics over real HTTP, moved by real polls."""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio as aioredis

from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from producers.merchants import ConnectedMerchants
from producers.process import PollerProcess
from sandbox.clover import CloverSandbox
from tests.ops_probe import OpsProbe
from tests.poller_support import (
    connected_vault,
    create_orders,
    make_topic,
    poller_settings,
)

ENDPOINTS = ("orders.list", "orders.get", "customers.get")


async def test_poller_reports_poll_lag_per_merchant_and_clover_429s(
    clover_sandbox: CloverSandbox,
    settings: Settings,
    redis: aioredis.Redis,
    keyspace: KeySpace,
    unique_name: Callable[[str], str],
) -> None:
    merchant_id = clover_sandbox.merchant_ids[0]
    config = poller_settings(settings, clover_sandbox)
    vault = await connected_vault(
        config, redis, keyspace, clover_sandbox, [merchant_id]
    )
    topic = await make_topic(config.kafka_bootstrap_servers, unique_name("raw"))
    process = PollerProcess(
        config,
        vault,
        ConnectedMerchants(redis, keyspace),
        keys=keyspace,
        topic=topic,
        ops_port=0,
    )
    assert process.ops is not None
    await process.start()
    try:
        probe = OpsProbe(f"http://127.0.0.1:{process.ops.port}")
        assert await probe.status("/healthz") == 200
        await probe.wait_ready()
        await probe.wait_value(
            "lockerlink_poller_poll_lag_seconds", 0, merchant=merchant_id
        )

        before = await probe.value(
            "lockerlink_poller_clover_rate_limited_total", scope="app"
        )
        clover_sandbox.faults.storm(retry_after_s=1, requests=2, endpoints=ENDPOINTS)
        create_orders(clover_sandbox, merchant_id, 1)
        await probe.wait_value(
            "lockerlink_poller_clover_rate_limited_total",
            (before or 0) + 1,
            scope="app",
        )
    finally:
        await process.stop()
        await vault.close()
