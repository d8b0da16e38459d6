"""Rotation events are never lost to a failed publish: the outbox keeps them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from lockerlink.broker import ensure_topics, make_consumer
from lockerlink.embedded import EmbeddedBroker, free_port
from lockerlink.errors import BrokerError
from schemas.token_rotation import RotationReason, TokenRotationEvent
from schemas.topics import TopicSpec
from tests.token_fixtures import Rig
from token_service.refresher import ProactiveRefresher
from token_service.rotation_events import (
    CallbackRotationPublisher,
    KafkaRotationPublisher,
)

# A bound on waiting for the broker, not a speed the test asserts.
_WAIT_S = 60.0


async def test_event_published_while_kafka_was_unreachable_goes_out_when_it_is_back(
    vault_rig: Rig, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    topic = unique_name("rotations")
    vault = vault_rig.make_vault(publisher=KafkaRotationPublisher(bootstrap, topic))
    merchant = await vault_rig.connect(vault)
    await vault.settle_events()  # the publish failed: nothing listens there
    (waiting,) = await vault.events.pending()
    assert waiting.merchant_id == merchant and waiting.reason is RotationReason.CONNECT

    broker = EmbeddedBroker("127.0.0.1", port, tmp_path / "tansu.log")
    broker.start()
    try:
        await ensure_topics(bootstrap, [TopicSpec(topic, compacted=True)], 1)
        stopping = asyncio.Event()
        refresher = ProactiveRefresher(vault, 1, idle_s=0.05, drain_every_s=0.05)
        running = asyncio.create_task(refresher.run(stopping))
        try:
            received = await asyncio.wait_for(_first_event(bootstrap, topic), _WAIT_S)
        finally:
            stopping.set()
            await running
        await vault.close()
    finally:
        broker.stop()

    assert received == waiting
    assert await vault.events.pending() == []


async def test_a_newer_event_replaces_an_older_one_still_waiting(
    vault_rig: Rig,
) -> None:
    published: list[TokenRotationEvent] = []
    kafka_down = True

    async def publish(event: TokenRotationEvent) -> None:
        if kafka_down:
            raise BrokerError("broker unreachable")
        published.append(event)

    vault = vault_rig.make_vault(publisher=CallbackRotationPublisher(publish))
    merchant = await vault_rig.connect(vault)
    await vault.settle_events()
    vault_rig.clock.advance(60)
    forced = await vault.force_refresh(merchant)
    await vault.settle_events()

    (waiting,) = await vault.events.pending()
    kafka_down = False
    drained = await vault.events.drain()

    assert waiting.reason is RotationReason.FORCED
    assert waiting.token_version == forced.version
    assert drained == 1 and published == [waiting]
    assert await vault.events.pending() == []


async def test_the_newest_event_is_the_last_published_when_publishes_cross(
    vault_rig: Rig,
) -> None:
    published: list[TokenRotationEvent] = []
    kafka_down = True
    vault = None

    async def publish(event: TokenRotationEvent) -> None:
        if kafka_down:
            raise BrokerError("broker unreachable")
        if event.reason is RotationReason.CONNECT and not published:
            # While the drain sends the old event, the merchant rotates and the
            # newer event goes out first: the two publishes cross.
            assert vault is not None
            vault_rig.clock.advance(60)
            await vault.force_refresh(event.merchant_id)
            await vault.settle_events()
        published.append(event)

    vault = vault_rig.make_vault(publisher=CallbackRotationPublisher(publish))
    await vault_rig.connect(vault)
    await vault.settle_events()
    kafka_down = False
    await vault.events.drain()

    reasons = [event.reason for event in published]
    assert reasons == [
        RotationReason.FORCED,
        RotationReason.CONNECT,
        RotationReason.FORCED,
    ]
    assert published[-1].token_version == max(e.token_version for e in published)
    assert await vault.events.pending() == []


async def _first_event(bootstrap: str, topic: str) -> TokenRotationEvent:
    consumer = make_consumer(bootstrap, None)
    consumer.subscribe([topic])
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert record.value is not None
    return TokenRotationEvent.model_validate_json(record.value)
