"""The poller against the Clover sandbox, the real broker and real Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from lockerlink.broker import make_consumer
from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from producers.merchants import ConnectedMerchants
from producers.process import PollerProcess
from sandbox.clover import CloverSandbox
from sandbox.clover_config import CloverConfig
from tests.poller_support import (
    AUTH,
    connected_vault,
    create_orders,
    duplicates,
    eventually,
    latest_versions,
    make_topic,
    poller_settings,
    read_topic,
)
from tests.sandboxes import SandboxFactory

Start = Callable[..., Awaitable[PollerProcess]]


@pytest.fixture
async def sandbox(clover_sandbox_factory: SandboxFactory) -> CloverSandbox:
    config = CloverConfig(merchant_ids=("MERCHANTAAAA1", "MERCHANTBBBB2"))
    return await clover_sandbox_factory(config)


@pytest.fixture
async def topic(kafka_bootstrap: str, unique_name: Callable[[str], str]) -> str:
    return await make_topic(kafka_bootstrap, unique_name("raw"))


@pytest.fixture
async def start_poller(
    settings: Settings,
    sandbox: CloverSandbox,
    keyspace: KeySpace,
    topic: str,
    redis: Any,
) -> AsyncIterator[Start]:
    """Starts poller processes in this event loop; stops those still running."""
    vault = await connected_vault(
        poller_settings(settings, sandbox),
        redis,
        keyspace,
        sandbox,
        sandbox.merchant_ids,
    )
    running: list[PollerProcess] = []

    async def start(**overrides: Any) -> PollerProcess:
        process = PollerProcess(
            poller_settings(settings, sandbox, **overrides),
            vault,
            ConnectedMerchants(redis, keyspace),
            keys=keyspace,
            topic=topic,
        )
        await process.start()
        running.append(process)
        return process

    yield start
    for process in running:
        if process._task is not None:
            await process.stop()
    await vault.close()


async def test_poll_publishes_every_order_version_once_across_a_restart(
    sandbox: CloverSandbox, start_poller: Start, kafka_bootstrap: str, topic: str
) -> None:
    first, second = sandbox.merchant_ids
    orders = create_orders(sandbox, first, 45) + create_orders(sandbox, second, 7)
    poller = await start_poller()
    phase_one = latest_versions(sandbox)
    await eventually(lambda: poller.poller.stats.published >= 52, "52 published")
    await poller.stop()

    sandbox.orders.update(first, orders[3], {"note": "extra napkins"})
    create_orders(sandbox, second, 3)
    poller = await start_poller()
    expected = phase_one | latest_versions(sandbox)
    await eventually(lambda: poller.poller.stats.published >= 4, "4 more published")
    await poller.stop()

    records = await read_topic(kafka_bootstrap, topic, len(expected))
    assert duplicates(records) == []
    assert {(r.order_id, r.modified_ms) for r in records} == expected
    assert all(r.source == "poll" and r.key == r.headers.merchant_id for r in records)


async def _post(url: str, body: Any, auth: str | None = AUTH) -> int:
    headers = {"X-Clover-Auth": auth} if auth is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        return response.status


def _notice(merchant_id: str, *events: tuple[str, str]) -> dict[str, Any]:
    return {
        "appId": "LOCKERLINKDEV",
        "merchants": {
            merchant_id: [
                {"objectId": f"O:{order_id}", "type": kind, "ts": 1}
                for order_id, kind in events
            ]
        },
    }


async def test_webhook_burst_becomes_one_fetch_and_one_record(
    sandbox: CloverSandbox, start_poller: Start, kafka_bootstrap: str, topic: str
) -> None:
    merchant_id = sandbox.merchant_ids[0]
    # A long interval: only the webhook can bring the order in quickly.
    poller = await start_poller(poller_interval_s=30.0, poller_webhook_debounce_s=0.2)
    await eventually(lambda: poller.poller.stats.polls >= 2, "first polls")
    order_id = create_orders(sandbox, merchant_id, 1)[0]
    burst = [(order_id, "CREATE")] + [(order_id, "UPDATE")] * 5
    assert poller.webhook_url is not None
    assert await _post(poller.webhook_url, _notice(merchant_id, *burst)) == 200
    assert await _post(poller.webhook_url, _notice(merchant_id, *burst)) == 200
    await eventually(lambda: poller.poller.stats.published >= 1, "webhook order")

    records = await read_topic(kafka_bootstrap, topic, 1)
    assert [(r.order_id, r.source) for r in records] == [(order_id, "webhook")]
    assert sandbox.calls.count("orders.get", merchant_id=merchant_id) == 1


async def test_webhook_delete_publishes_one_delete_record(
    sandbox: CloverSandbox, start_poller: Start, kafka_bootstrap: str, topic: str
) -> None:
    merchant_id = sandbox.merchant_ids[0]
    order_id = create_orders(sandbox, merchant_id, 1)[0]
    poller = await start_poller(poller_interval_s=30.0)
    await eventually(lambda: poller.poller.stats.published >= 1, "order polled")
    sandbox.orders.delete(merchant_id, order_id)
    assert poller.webhook_url is not None
    notice = _notice(merchant_id, (order_id, "DELETE"), (order_id, "DELETE"))
    assert await _post(poller.webhook_url, notice) == 200
    await eventually(lambda: poller.poller.stats.deleted >= 1, "delete published")
    assert await _post(poller.webhook_url, notice) == 200
    await eventually(
        lambda: sandbox.calls.count("orders.get", merchant_id=merchant_id) >= 2,
        "second delete fetched",
    )

    records = await read_topic(kafka_bootstrap, topic, 2)
    assert [(r.order_id, r.deleted) for r in records] == [
        (order_id, False),
        (order_id, True),
    ]
    assert records[1].key == merchant_id


async def test_order_gone_from_the_listing_becomes_a_delete_record(
    sandbox: CloverSandbox, start_poller: Start, kafka_bootstrap: str, topic: str
) -> None:
    merchant_id = sandbox.merchant_ids[0]
    kept, deleted = create_orders(sandbox, merchant_id, 2)
    # No webhook tells of this deletion: only the sweep can find it.
    poller = await start_poller(poller_delete_sweep_s=0.3)
    await eventually(lambda: poller.poller.stats.published >= 2, "orders polled")
    sandbox.orders.delete(merchant_id, deleted)
    await eventually(lambda: poller.poller.stats.deleted >= 1, "delete found")
    await poller.stop()
    # The sweep's id list used Clover's documented syntax: nothing was refused.
    assert sandbox.calls.count(outcome="bad_request") == 0

    records = await read_topic(kafka_bootstrap, topic, 3)
    assert duplicates(records) == []
    assert [(r.order_id, r.source) for r in records if r.deleted] == [(deleted, "poll")]
    assert kept in {r.order_id for r in records if not r.deleted}


@pytest.mark.parametrize(
    ("body", "auth", "status"),
    [
        ({"merchants": {}}, "wrong-code", 401),
        ({"merchants": {}}, None, 401),
        ({"merchants": []}, AUTH, 400),
        ({"merchants": {"M1": [{"objectId": 7}]}}, AUTH, 400),
        ({"merchants": {"M 1": []}}, AUTH, 400),
        ([1, 2], AUTH, 400),
        ({"verificationCode": "abc123"}, None, 200),
        ({"merchants": {"UNKNOWNMERCH": [{"objectId": "O:X1"}]}}, AUTH, 200),
        ({"merchants": {"MERCHANTAAAA1": [{"objectId": "C:CUST1"}]}}, AUTH, 200),
    ],
)
async def test_webhook_refuses_wrong_auth_and_bad_bodies(
    start_poller: Start, body: Any, auth: str | None, status: int
) -> None:
    poller = await start_poller(poller_interval_s=30.0)
    assert poller.webhook_url is not None
    assert await _post(poller.webhook_url, body, auth) == status
    stats = poller.receiver.stats
    assert stats.bad_bodies == (1 if status == 400 else 0)
    assert stats.wrong_auth == (1 if status == 401 else 0)
    assert stats.orders_queued == 0


async def test_webhook_body_that_is_not_json_is_counted_and_refused(
    start_poller: Start,
) -> None:
    poller = await start_poller(poller_interval_s=30.0)
    assert poller.webhook_url is not None
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            poller.webhook_url, data=b"{not json", headers={"X-Clover-Auth": AUTH}
        ) as response,
    ):
        assert response.status == 400
    assert poller.receiver.stats.bad_bodies == 1


async def test_two_pollers_share_merchants_and_hand_them_back(
    clover_sandbox_factory: SandboxFactory,
    settings: Settings,
    keyspace: KeySpace,
    topic: str,
    kafka_bootstrap: str,
    redis: Any,
) -> None:
    config = CloverConfig(merchant_ids=tuple(f"MERCHANT{i:05d}" for i in range(6)))
    sandbox = await clover_sandbox_factory(config)
    vault = await connected_vault(
        poller_settings(settings, sandbox),
        redis,
        keyspace,
        sandbox,
        sandbox.merchant_ids,
    )
    for merchant_id in sandbox.merchant_ids:
        create_orders(sandbox, merchant_id, 3)

    def make() -> PollerProcess:
        return PollerProcess(
            poller_settings(settings, sandbox),
            vault,
            ConnectedMerchants(redis, keyspace),
            keys=keyspace,
            topic=topic,
            serve_webhooks=False,
        )

    one, two = make(), make()
    await one.start()
    await eventually(lambda: len(one.service.held) == 6, "first holds all")
    await two.start()
    await eventually(
        lambda: len(one.service.held) == 3 and len(two.service.held) == 3,
        "each holds half",
    )
    assert not one.service.held & two.service.held
    for merchant_id in sandbox.merchant_ids[:4]:
        create_orders(sandbox, merchant_id, 2)
    expected = latest_versions(sandbox)
    await eventually(
        lambda: one.poller.stats.published + two.poller.stats.published >= 26,
        "all published",
    )
    await two.stop()
    await eventually(lambda: len(one.service.held) == 6, "first takes all back")
    await one.stop()
    await vault.close()

    records = await read_topic(kafka_bootstrap, topic, len(expected))
    assert duplicates(records) == []
    assert {(r.order_id, r.modified_ms) for r in records} == expected


async def test_bare_customer_references_are_filled_from_a_cached_lookup(
    sandbox: CloverSandbox, start_poller: Start, kafka_bootstrap: str, topic: str
) -> None:
    merchant_id = sandbox.merchant_ids[0]
    regular = {
        "firstName": "Joé",
        "lastName": "Martin ",
        "phoneNumbers": [{"phoneNumber": "+1 555 0100"}],
    }
    first = sandbox.orders.create(merchant_id, {"title": "a", "customers": [regular]})
    customer_id = first["customers"][0]["id"]
    again = {"title": "b", "customers": [{**regular, "id": customer_id}]}
    sandbox.orders.create(merchant_id, again)
    poller = await start_poller()
    await eventually(lambda: poller.poller.stats.published >= 2, "both published")

    assert sandbox.calls.count("customers.get", merchant_id=merchant_id) == 1
    values = await _values(kafka_bootstrap, topic)
    assert len(values) == 2
    for value in values:
        (customer,) = value["customers"]["elements"]
        assert customer["firstName"] == "Joé"
        assert "+1 555 0100" in json.dumps(customer["phoneNumbers"])


async def _values(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    consumer = make_consumer(bootstrap, None)
    consumer.subscribe([topic])
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=3000)
        return [json.loads(r.value) for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
