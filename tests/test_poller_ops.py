"""The poller as operators see it: ops endpoints moved by real polls, outage mail."""

from __future__ import annotations

from collections.abc import Callable

import redis.asyncio as aioredis

from lockerlink.alerts import Alerter, SmtpSender
from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from producers.health import alerter_hook
from producers.merchants import ConnectedMerchants
from producers.process import PollerProcess
from sandbox.clover import CloverSandbox
from tests.mail_inbox import Inbox
from tests.ops_probe import OpsProbe
from tests.poller_support import (
    connected_vault,
    create_orders,
    eventually,
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


async def test_clover_outage_mails_once_when_it_starts_and_once_when_it_ends(
    clover_sandbox: CloverSandbox,
    settings: Settings,
    redis: aioredis.Redis,
    keyspace: KeySpace,
    smtp_inbox: tuple[Inbox, int],
    unique_name: Callable[[str], str],
) -> None:
    inbox, smtp_port = smtp_inbox
    merchant_id = clover_sandbox.merchant_ids[0]
    config = poller_settings(
        settings,
        clover_sandbox,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        alert_email_to="ops@example.test",
    )
    vault = await connected_vault(
        config, redis, keyspace, clover_sandbox, [merchant_id]
    )
    topic = await make_topic(config.kafka_bootstrap_servers, unique_name("raw"))
    alerter = Alerter(redis, keyspace, SmtpSender.from_settings(config), "poller")
    clover_sandbox.faults.outage("error", status=503, requests=12, endpoints=ENDPOINTS)
    process = PollerProcess(
        config,
        vault,
        ConnectedMerchants(redis, keyspace),
        keys=keyspace,
        topic=topic,
        alert_hook=alerter_hook(alerter),
    )
    await process.start()
    try:
        resolved = "[lockerlink] RESOLVED: Clover unreachable for Clover"
        await eventually(lambda: resolved in inbox.subjects(), "the recovery mail")
    finally:
        await process.stop()
        await vault.close()
    subjects = inbox.subjects()
    assert subjects.count("[lockerlink] Clover unreachable for Clover") == 1
    assert subjects.count(resolved) == 1
