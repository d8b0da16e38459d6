"""The poller through Clover's bad days: outages, 429 storms, expiring tokens, lossy
webhooks. Each ends with every order version on the raw topic exactly once and the
sandbox's own rate limiter never having to refuse a request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis

from lockerlink.embedded import free_port
from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from producers.health import OutageEvent
from producers.merchants import ConnectedMerchants
from producers.process import PollerProcess
from sandbox.clover import CloverSandbox
from sandbox.clover_config import CloverConfig
from sandbox.clover_webhooks import WebhookConfig
from tests.poller_support import (
    AUTH,
    all_in_ledger,
    connected_vault,
    create_orders,
    duplicates,
    eventually,
    latest_versions,
    make_topic,
    poller_settings,
    read_topic,
)
from tests.sandboxes import ManualClock, SandboxFactory
from token_service.vault import Vault

ENDPOINTS = ("orders.list", "orders.get", "customers.get")


@dataclass
class Rig:
    """A sandbox, a vault with its merchants connected, and pollers to start."""

    sandbox: CloverSandbox
    settings: Settings
    redis: aioredis.Redis
    keyspace: KeySpace
    topic: str
    vault: Vault | None = None
    alerts: list[OutageEvent] = field(default_factory=list)
    running: list[PollerProcess] = field(default_factory=list)

    async def start(self, **overrides: Any) -> PollerProcess:
        settings = poller_settings(self.settings, self.sandbox, **overrides)
        if self.vault is None:
            self.vault = await connected_vault(
                settings,
                self.redis,
                self.keyspace,
                self.sandbox,
                self.sandbox.merchant_ids,
            )

        async def record(event: OutageEvent) -> None:
            self.alerts.append(event)

        process = PollerProcess(
            settings,
            self.vault,
            ConnectedMerchants(self.redis, self.keyspace),
            keys=self.keyspace,
            topic=self.topic,
            alert_hook=record,
        )
        await process.start()
        self.running.append(process)
        return process

    async def records(self) -> list[Any]:
        expected = latest_versions(self.sandbox)
        return await read_topic(
            self.settings.kafka_bootstrap_servers, self.topic, len(expected)
        )

    def refused_by_limits(self) -> int:
        """Requests the sandbox's real limiter refused (not injected storms)."""
        return sum(
            self.sandbox.calls.count(endpoint, outcome="rate_limited")
            for endpoint in ENDPOINTS
        )


RigFactory = Callable[..., Any]


@pytest.fixture
async def make_rig(
    clover_sandbox_factory: SandboxFactory,
    settings: Settings,
    redis: aioredis.Redis,
    keyspace: KeySpace,
    unique_name: Callable[[str], str],
) -> AsyncIterator[RigFactory]:
    rigs: list[Rig] = []

    async def make(config: CloverConfig, clock: ManualClock | None = None) -> Rig:
        sandbox = await clover_sandbox_factory(config, clock=clock)
        topic = await make_topic(settings.kafka_bootstrap_servers, unique_name("raw"))
        rig = Rig(sandbox, settings, redis, keyspace, topic)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        for process in rig.running:
            if process._task is not None:
                await process.stop()
        if rig.vault is not None:
            await rig.vault.close()


async def _all_versions_once(rig: Rig) -> None:
    await eventually(
        lambda: all_in_ledger(rig.redis, rig.keyspace, rig.sandbox), "all published"
    )
    expected = latest_versions(rig.sandbox)
    for process in rig.running:
        if process._task is not None:
            await process.stop()
    records = await rig.records()
    assert duplicates(records) == []
    assert {(r.order_id, r.modified_ms) for r in records} >= expected
    assert rig.refused_by_limits() == 0


async def test_outage_mid_pagination_loses_nothing_and_alerts_once(
    make_rig: RigFactory,
) -> None:
    rig: Rig = await make_rig(CloverConfig(merchant_ids=("OUTAGEMERCH1",)))
    merchant_id = rig.sandbox.merchant_ids[0]
    create_orders(rig.sandbox, merchant_id, 60)
    # Slow pages, so the outage surely starts between two of them.
    rig.sandbox.faults.latency(0.1)
    poller = await rig.start(poller_page_size=10, poller_interval_s=0.1)
    await eventually(
        lambda: rig.sandbox.calls.count("orders.list", outcome="ok") >= 2, "two pages"
    )
    rig.sandbox.faults.outage("error", status=503, duration_s=2.0, endpoints=ENDPOINTS)
    await eventually(lambda: poller.breaker.is_open, "breaker opens")
    assert poller.poller.stats.published == 0  # pages seen, nothing half-published
    rig.sandbox.faults.latency(0)
    await eventually(lambda: not poller.breaker.is_open, "breaker closes")
    await _all_versions_once(rig)

    whole = [e for e in rig.alerts if e.merchant_id is None]
    assert [e.started for e in whole] == [True, False]
    mine = [e for e in rig.alerts if e.merchant_id == merchant_id]
    assert [e.started for e in mine] == [True, False]


async def test_429_storm_is_waited_out_and_the_limits_are_kept(
    make_rig: RigFactory,
) -> None:
    merchants = tuple(f"STORMMERCH{i:03d}" for i in range(12))
    rig: Rig = await make_rig(CloverConfig(merchant_ids=merchants))
    for merchant_id in merchants:
        create_orders(rig.sandbox, merchant_id, 3)
    # Polling as fast as the app's budget lets twelve merchants be polled.
    poller = await rig.start(poller_interval_s=0.01)
    await eventually(lambda: poller.poller.stats.polls >= 24, "polling")
    rig.sandbox.faults.storm(retry_after_s=1, duration_s=1.5, endpoints=ENDPOINTS)
    started = time.monotonic()
    for merchant_id in merchants[:6]:
        create_orders(rig.sandbox, merchant_id, 2)
    await eventually(lambda: time.monotonic() - started > 2.5, "storm over")
    stormed = sum(rig.sandbox.calls.count(e, outcome="storm") for e in ENDPOINTS)
    # Every 429 named the app-wide limit and asked for a second: the whole app
    # waits, then sends one probe. Only requests already on the wire when the storm
    # began add to that; polling blindly would have met about fifty.
    assert 1 <= stormed <= 8 + 2
    assert poller.client.rate_limited == stormed
    await _all_versions_once(rig)


async def test_a_merchants_429_hold_off_is_kept_by_the_next_lease_holder(
    make_rig: RigFactory,
) -> None:
    merchants = ("HOLDMERCH001", "HOLDMERCH002")
    rig: Rig = await make_rig(CloverConfig(merchant_ids=merchants))
    # One 429 naming a merchant's own limit, holding off longer than the test runs.
    rig.sandbox.faults.storm(
        retry_after_s=120,
        header="X-RateLimit-tokenLimit",
        requests=1,
        endpoints=["orders.list"],
    )
    first = await rig.start()
    await eventually(
        lambda: (
            rig.sandbox.calls.count("orders.list", outcome="storm") == 1
            and first.poller.stats.polls >= 2
        ),
        "one merchant held off, the other polled",
    )
    stormed = [
        m
        for m in merchants
        if rig.sandbox.calls.count("orders.list", outcome="storm", merchant_id=m)
    ]
    assert len(stormed) == 1
    held_off = stormed[0]
    other = next(m for m in merchants if m != held_off)

    second = await rig.start()
    await first.stop()
    await eventually(lambda: len(second.service.held) == 2, "second holds both")
    polled = rig.sandbox.calls.count("orders.list", merchant_id=other)
    await eventually(
        lambda: rig.sandbox.calls.count("orders.list", merchant_id=other) >= polled + 3,
        "the other merchant polled by the second poller",
    )
    # The new holder honoured the hold-off Clover asked of the first one.
    assert rig.sandbox.calls.count("orders.list", merchant_id=held_off) == 1
    assert second.client.rate_limited == 0


async def test_token_expiring_mid_run_is_replaced_through_the_vault(
    make_rig: RigFactory,
) -> None:
    clock = ManualClock(time.time())
    config = CloverConfig(merchant_ids=("TOKENMERCH01",), access_token_lifetime_s=600)
    rig: Rig = await make_rig(config, clock)
    merchant_id = rig.sandbox.merchant_ids[0]
    create_orders(rig.sandbox, merchant_id, 5)
    poller = await rig.start()
    await eventually(lambda: poller.poller.stats.published >= 5, "first orders")
    # Clover's clock passes the token's expiry while the vault still holds it.
    clock.advance(601)
    create_orders(rig.sandbox, merchant_id, 5)
    await eventually(lambda: poller.client.rejected_tokens >= 1, "token rejected")
    await _all_versions_once(rig)
    assert rig.sandbox.calls.count("refresh", outcome="ok") >= 1
    assert rig.sandbox.calls.count("orders.list", outcome="expired") >= 1


async def test_duplicate_and_dropped_webhooks_still_publish_each_version_once(
    make_rig: RigFactory,
) -> None:
    port = free_port()
    webhooks = WebhookConfig(
        url=f"http://127.0.0.1:{port}/clover/webhooks",
        auth_code=AUTH,
        batch_interval_s=0.05,
        duplicate_update_probability=0.5,
        drop_probability=0.3,
        seed=7,
    )
    config = CloverConfig(
        merchant_ids=("HOOKMERCH001", "HOOKMERCH002"), webhooks=webhooks
    )
    rig: Rig = await make_rig(config)
    # Polls are rare here: webhooks bring most changes, polls the dropped ones.
    poller = await rig.start(poller_webhook_port=port, poller_interval_s=1.0)
    await eventually(lambda: poller.poller.stats.polls >= 2, "first polls")
    for turn in range(30):
        merchant_id = rig.sandbox.merchant_ids[turn % 2]
        order_id = create_orders(rig.sandbox, merchant_id, 1)[0]
        if turn % 2:
            rig.sandbox.orders.update(merchant_id, order_id, {"note": "no onions"})
        if turn % 5 == 4:
            rig.sandbox.orders.delete(merchant_id, order_id)
        await asyncio.sleep(0.02)
    assert rig.sandbox.webhooks.dropped, "the seed drops some notices"
    await eventually(lambda: rig.sandbox.webhooks.pending == 0, "notices sent")
    deleted = {v.order_id for v in rig.sandbox.orders.versions() if v.kind == "DELETE"}
    await eventually(lambda: poller.poller.stats.deleted >= 1, "deletes published")
    await _all_versions_once(rig)
    records = await rig.records()
    assert {r.source for r in records} == {"poll", "webhook"}
    assert {r.order_id for r in records if r.deleted} <= deleted
    assert poller.receiver.stats.wrong_auth == 0
