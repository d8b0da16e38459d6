"""Clover sandbox webhooks, received by a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import ANY

import pytest
from aiohttp import web

from lockerlink.embedded import free_port
from sandbox.clover_config import CloverConfig
from sandbox.clover_webhooks import Delivery, WebhookConfig
from tests.sandboxes import SandboxFactory

QUIET_S = 3600.0  # batches only when a test flushes


@dataclass
class Receiver:
    """What a webhook endpoint received: bodies with their X-Clover-Auth header."""

    url: str = ""
    posts: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append((await request.json(), request.headers.get("X-Clover-Auth")))
        self.arrived.set()
        return web.Response(status=200)

    def notifications(self) -> list[dict[str, Any]]:
        return [body for body, _ in self.posts if "merchants" in body]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/clover", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}/clover"
    try:
        yield found
    finally:
        await runner.cleanup()


def _config(receiver: Receiver, **webhook: Any) -> CloverConfig:
    hooks = WebhookConfig(url=receiver.url, auth_code="shared-code", **webhook)
    return CloverConfig(webhooks=hooks)


async def test_verification_code_is_posted_first_without_the_auth_header(
    clover_sandbox_factory: SandboxFactory, receiver: Receiver
) -> None:
    sandbox = await clover_sandbox_factory(_config(receiver, batch_interval_s=QUIET_S))
    (body, auth), *_ = receiver.posts
    assert body == {"verificationCode": sandbox.webhooks.verification_code}
    assert auth is None


async def test_batch_spans_merchants_with_the_auth_header_and_no_order_data(
    clover_sandbox_factory: SandboxFactory, receiver: Receiver
) -> None:
    sandbox = await clover_sandbox_factory(_config(receiver, batch_interval_s=QUIET_S))
    first, second = sandbox.merchant_ids[0], sandbox.add_merchant()
    a = sandbox.orders.create(first, {"title": "a"})
    b = sandbox.orders.create(second, {"title": "b"})
    sandbox.orders.update(first, a["id"], {"state": "locked"})
    sandbox.orders.delete(second, b["id"])
    await sandbox.webhooks.flush()
    (body,) = receiver.notifications()
    assert receiver.posts[-1][1] == "shared-code"
    assert body["appId"] == sandbox.config.app_id
    assert [(n["objectId"], n["type"]) for n in body["merchants"][first]] == [
        (f"O:{a['id']}", "CREATE"),
        (f"O:{a['id']}", "UPDATE"),
    ]
    assert [(n["objectId"], n["type"]) for n in body["merchants"][second]] == [
        (f"O:{b['id']}", "CREATE"),
        (f"O:{b['id']}", "DELETE"),
    ]
    assert all(set(n) == {"objectId", "type", "ts"} for n in body["merchants"][first])


async def test_batches_go_out_on_their_own_every_interval(
    clover_sandbox_factory: SandboxFactory, receiver: Receiver
) -> None:
    sandbox = await clover_sandbox_factory(_config(receiver, batch_interval_s=0.02))
    receiver.arrived.clear()
    sandbox.orders.create(sandbox.merchant_ids[0], {"title": "a"})
    await asyncio.wait_for(receiver.arrived.wait(), timeout=10)
    assert len(receiver.notifications()) == 1


async def test_updates_can_arrive_in_duplicate_bursts(
    clover_sandbox_factory: SandboxFactory, receiver: Receiver
) -> None:
    config = _config(
        receiver,
        batch_interval_s=QUIET_S,
        duplicate_update_probability=1.0,
        duplicate_burst=4,
    )
    sandbox = await clover_sandbox_factory(config)
    merchant = sandbox.merchant_ids[0]
    order = sandbox.orders.create(merchant, {"title": "a"})
    sandbox.orders.update(merchant, order["id"], {"state": "locked"})
    await sandbox.webhooks.flush()
    (body,) = receiver.notifications()
    types = [n["type"] for n in body["merchants"][merchant]]
    assert types == ["CREATE"] + ["UPDATE"] * 5


async def test_dropped_notifications_follow_the_seed(
    clover_sandbox_factory: SandboxFactory, receiver: Receiver
) -> None:
    async def dropped_ids(seed: int) -> list[str]:
        config = _config(
            receiver, batch_interval_s=QUIET_S, drop_probability=0.5, seed=seed
        )
        config.seed = 11
        sandbox = await clover_sandbox_factory(config)
        merchant = sandbox.merchant_ids[0]
        for n in range(40):
            sandbox.orders.create(merchant, {"title": f"t{n}"})
        await sandbox.webhooks.flush()
        delivered = sandbox.webhooks.deliveries[-1].body["merchants"][merchant]
        assert len(delivered) + len(sandbox.webhooks.dropped) == 40
        return [notice.object_id for notice in sandbox.webhooks.dropped]

    first = await dropped_ids(3)
    again = await dropped_ids(3)
    other = await dropped_ids(4)
    assert first == again
    assert 0 < len(first) < 40
    assert other != first


async def test_a_receiver_outage_is_logged_once_when_it_starts_and_when_it_ends(
    clover_sandbox_factory: SandboxFactory,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox = await clover_sandbox_factory(_config(receiver, batch_interval_s=QUIET_S))
    merchant_id = sandbox.merchant_ids[0]
    live_url = receiver.url
    sandbox.webhooks.config.url = f"http://127.0.0.1:{free_port()}/clover"
    caplog.set_level(logging.INFO, logger="sandbox.clover_webhooks")
    for n in range(5):
        sandbox.orders.create(merchant_id, {"title": f"lost {n}"})
        assert (await sandbox.webhooks.flush()) == Delivery(ANY, None)
    sandbox.webhooks.config.url = live_url
    sandbox.orders.create(merchant_id, {"title": "found"})
    await sandbox.webhooks.flush()

    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "failed: ClientConnectorError" in lines[0]
    assert "works again after 5 failed" in lines[1]
    assert sandbox.webhooks.failing == 0
