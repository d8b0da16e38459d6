"""The Kafka locker client: in order, retried, committed, and told about new tokens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from consumers.backoff import Backoff
from consumers.locker_client import EventRejected, KafkaLockerClient
from lockerlink.broker import ensure_topics, make_producer
from schemas.locker_order import LockerOrderEvent
from schemas.token_rotation import MerchantState, RotationReason, TokenRotationEvent
from schemas.topics import CORE_TOPICS, TOKEN_ROTATIONS
from tests.delivery_rig import (
    create_store_topics,
    dead_letters_for,
    produce,
    wait_until,
)
from tests.locker_events import order_events


@contextlib.asynccontextmanager
async def running(client: KafkaLockerClient) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(client.run(stopping))
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=30)


def _client(
    bootstrap: str,
    store: str,
    on_event: Callable[[LockerOrderEvent], object],
    **kw: object,
) -> KafkaLockerClient:
    async def handle(event: LockerOrderEvent) -> None:
        result = on_event(event)
        if asyncio.iscoroutine(result):
            await result

    return KafkaLockerClient(
        bootstrap_servers=bootstrap,
        store_id=store,
        on_event=handle,
        backoff=Backoff(base_s=0.01, max_s=0.05),
        session_timeout_s=3.0,
        **kw,  # type: ignore[arg-type]
    )


async def test_events_arrive_in_order_failures_retried_rejections_dead_lettered(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    store = unique_name("kclient")
    events = order_events(store, 8)
    await create_store_topics(kafka_bootstrap, [store])
    await produce(kafka_bootstrap, events)
    seen: list[str] = []
    failures = {events[3].event_id: 2}

    def on_event(event: LockerOrderEvent) -> None:
        if failures.get(event.event_id, 0) > 0:
            failures[event.event_id] -= 1
            raise RuntimeError("locker database busy")
        if event.order_id == events[5].order_id:
            raise EventRejected("no compartment fits")
        seen.append(event.event_id)

    async with running(_client(kafka_bootstrap, store, on_event)):
        await wait_until(lambda: len(seen) == 7, "seven events")
    assert seen == [e.event_id for e in events if e is not events[5]]
    [letter] = await dead_letters_for(kafka_bootstrap, store)
    assert letter.reason == "locker_rejected"

    more = order_events(store, 3, prefix="N")
    await produce(kafka_bootstrap, more)
    after_restart: list[str] = []
    async with running(
        _client(kafka_bootstrap, store, lambda e: after_restart.append(e.event_id))
    ):
        await wait_until(lambda: len(after_restart) == 3, "only the new ones")
    assert after_restart == [e.event_id for e in more]


async def test_token_rotations_for_the_store_reach_the_callback(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    await ensure_topics(kafka_bootstrap, CORE_TOPICS, 1)
    store, other = unique_name("rot"), unique_name("rot")
    await create_store_topics(kafka_bootstrap, [store])

    def rotation(stores: tuple[str, ...], version: int) -> TokenRotationEvent:
        return TokenRotationEvent(
            merchant_id=f"M-{stores[0]}",
            store_ids=stores,
            state=MerchantState.CONNECTED,
            token_version=version,
            fingerprint="ab12cd34ef56ab78",
            reason=RotationReason.PROACTIVE,
            at=datetime.now(UTC),
        )

    producer = make_producer(kafka_bootstrap)
    await producer.start()

    async def publish(event: TokenRotationEvent) -> None:
        await producer.send_and_wait(
            TOKEN_ROTATIONS,
            key=event.merchant_id.encode(),
            value=event.model_dump_json().encode(),
        )

    received: list[TokenRotationEvent] = []

    async def on_rotation(event: TokenRotationEvent) -> None:
        received.append(event)

    try:
        await publish(rotation((store,), 1))
        await producer.send_and_wait(TOKEN_ROTATIONS, key=b"x", value=b"not json")
        client = _client(
            kafka_bootstrap, store, lambda e: None, on_token_rotation=on_rotation
        )
        async with running(client):
            await wait_until(lambda: len(received) == 1, "the rotation from before")
            await publish(rotation((other,), 1))
            await publish(rotation((other, store), 2))
            await wait_until(lambda: len(received) == 2, "the new rotation")
    finally:
        await producer.stop()
    assert [(e.token_version, store in e.store_ids) for e in received] == [
        (1, True),
        (2, True),
    ]


async def test_a_callback_slower_than_the_group_allows_is_retried_not_fatal(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    # One event takes the locker longer than the group waits for a client: the
    # group drops the client, its commit is refused, and it must rejoin and read
    # again from its last commit instead of dying.
    store = unique_name("kslow")
    events = order_events(store, 6)
    await create_store_topics(kafka_bootstrap, [store])
    await produce(kafka_bootstrap, events)
    seen: list[str] = []
    slow_once = {events[2].event_id}

    async def on_event(event: LockerOrderEvent) -> None:
        if event.event_id in slow_once:
            slow_once.clear()
            await asyncio.sleep(3.0)
        seen.append(event.event_id)

    client = _client(kafka_bootstrap, store, on_event, max_callback_s=1.0)
    async with running(client):
        await wait_until(
            lambda: set(seen) == {e.event_id for e in events}, "every event"
        )
    # The slow event's commit was refused, so it came again; nothing was skipped
    # and what was new came in order.
    assert seen.count(events[2].event_id) == 2
    order = [e.event_id for e in events]
    new = [order.index(event_id) for event_id in dict.fromkeys(seen)]
    assert new == list(range(len(events)))
