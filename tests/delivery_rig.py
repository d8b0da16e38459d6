"""A delivery test rig: store topics on the real broker, locker sandboxes, a service."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from aiokafka.structs import TopicPartition

from consumers.alerts import Alert
from consumers.backoff import Backoff
from consumers.delivery import DeliveryService
from consumers.status_feed import StatusFeed
from consumers.store_lane import DeliveryOptions
from consumers.topic_window import read_windows, reader, windows_by_time
from lockerlink.broker import ensure_topics, make_consumer, make_producer
from lockerlink.registry import StoreRegistry
from lockerlink.registry_reload import StoreLookup
from sandbox.locker import LockerSandbox
from schemas.dead_letter import DeadLetter
from schemas.locker_order import LockerOrderEvent
from schemas.topics import DEAD_LETTER, TopicSpec, store_topic

FAST = DeliveryOptions(
    commit_interval_s=0.1,
    failures_to_open=2,
    backoff=Backoff(base_s=0.01, max_s=0.1),
    session_timeout_s=3.0,
)


async def wait_until(
    condition: Callable[[], bool], what: str, timeout_s: float = 60.0
) -> None:
    """Poll ``condition``; the timeout only keeps a broken test from hanging."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        await asyncio.sleep(0.02)


def registry_for(lockers: dict[str, LockerSandbox]) -> StoreRegistry:
    return StoreRegistry.from_mapping(
        {
            "stores": [
                {"store_id": store, "locker": {"url": locker.base_url, "timeout_s": 2}}
                for store, locker in lockers.items()
            ]
        }
    )


def pattern_for(prefix: str) -> str:
    """A store-topic pattern that matches only this test's stores."""
    return rf"^lockers\.(?P<store>{re.escape(prefix)}[a-z0-9_-]*)\.orders$"


async def create_store_topics(bootstrap: str, stores: Sequence[str]) -> None:
    await ensure_topics(bootstrap, [TopicSpec(store_topic(s)) for s in stores], 1)


async def produce(
    bootstrap: str,
    events: Sequence[LockerOrderEvent | bytes],
    *,
    store_id: str | None = None,
    timestamp_ms: int | None = None,
) -> None:
    """Publish events (or raw bytes, to ``store_id``'s topic) in order."""
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for item in events:
            if isinstance(item, LockerOrderEvent):
                store, value = item.store_id, item.model_dump_json().encode()
            else:
                assert store_id is not None
                store, value = store_id, item
            await producer.send_and_wait(
                store_topic(store),
                key=store.encode(),
                value=value,
                timestamp_ms=timestamp_ms,
            )
    finally:
        await producer.stop()


async def committed_offset(bootstrap: str, group: str, store_id: str) -> int | None:
    consumer = make_consumer(bootstrap, group)
    await consumer.start()
    try:
        result: int | None = await consumer.committed(
            TopicPartition(store_topic(store_id), 0)
        )
        return result
    finally:
        await consumer.stop()


@dataclass
class Running:
    service: DeliveryService
    alerts: list[Alert] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running_delivery(
    bootstrap: str,
    registry: StoreLookup,
    *,
    group: str,
    pattern: str,
    options: DeliveryOptions = FAST,
    status: StatusFeed | None = None,
) -> AsyncIterator[Running]:
    """A delivery service running as a task until the block ends."""
    alerts: list[Alert] = []
    service = DeliveryService(
        bootstrap_servers=bootstrap,
        registry=registry,
        group_id=group,
        pattern=pattern,
        options=options,
        alert=alerts.append,
        status=status,
    )
    stopping = asyncio.Event()
    task = asyncio.create_task(service.run(stopping))
    try:
        yield Running(service, alerts)
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=30)


async def dead_letters_for(bootstrap: str, store_id: str) -> list[DeadLetter]:
    """Every dead letter of ``store_id`` on the dead-letter topic so far."""
    consumer = reader(bootstrap)
    await consumer.start()
    try:
        windows = await windows_by_time(consumer, DEAD_LETTER, None)
        return [
            letter
            async for record in read_windows(consumer, windows)
            if (letter := DeadLetter.model_validate_json(record.value)).store_id
            == store_id
        ]
    finally:
        await consumer.stop()
