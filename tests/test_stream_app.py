"""The Faust stream against the real broker and Redis, run in this process.

One run covers the order lifecycle (created, updated, a replayed version, a stale
version, a deletion), PIN uniqueness, an in-store order and two dead letters; a
second run over the same raw records shows that a replay keeps event ids and PINs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from lockerlink.broker import ensure_topics, make_consumer, make_producer
from lockerlink.keys import KeySpace
from lockerlink.registry import StoreRegistry
from lockerlink.settings import Settings
from schemas.dead_letter import DeadLetter
from schemas.locker_order import Channel, EventType, LockerOrderEvent
from schemas.raw_order import RawOrderRecord, RawSource, delete_record, order_record
from schemas.topics import DEAD_LETTER, TopicSpec, store_topic
from streams.app import make_app

pytestmark = pytest.mark.timeout(90)

UBER_REF = "a3c1e2f4-1b2c-4d5e-8f90-123456abc953"
CREATED_MS = 1_733_095_800_000
WAIT_S = 30.0


def _order(order_id: str, version: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": order_id,
        "modifiedTime": version,
        "createdTime": CREATED_MS,
        "total": 1200,
        "lineItems": {"elements": [{"name": "Pho", "price": 1200}]},
        **fields,
    }


async def _publish(
    bootstrap: str, topic: str, records: list[RawOrderRecord]
) -> list[int]:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        offsets = []
        for record in records:
            meta = await producer.send_and_wait(
                topic, record.value, key=record.key, headers=list(record.headers)
            )
            offsets.append(meta.offset)
        return offsets
    finally:
        await producer.stop()


async def _collect(
    bootstrap: str, topics: list[str], done: Callable[[list[Any]], bool]
) -> list[Any]:
    consumer = make_consumer(bootstrap, None, metadata_max_age_ms=500)
    consumer.subscribe(topics)
    await consumer.start()
    seen: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while not done(seen) and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                seen.extend(records)
        return seen
    finally:
        await consumer.stop()


async def _run_stream(
    settings: Settings,
    registry: StoreRegistry,
    keyspace: KeySpace,
    app_id: str,
    raw_topic: str,
    collect: Callable[[], Any],
) -> Any:
    app = make_app(
        settings, registry, keyspace=keyspace, app_id=app_id, raw_topic=raw_topic
    )
    await app.start()
    try:
        return await collect()
    finally:
        await app.stop()


def _events(records: list[Any], store_id: str) -> list[LockerOrderEvent]:
    topic = store_topic(store_id)
    return [
        LockerOrderEvent.model_validate_json(r.value)
        for r in records
        if r.topic == topic
    ]


def _letters(records: list[Any], merchant_ids: set[str]) -> list[DeadLetter]:
    letters = [
        DeadLetter.model_validate_json(r.value)
        for r in records
        if r.topic == DEAD_LETTER
    ]
    return [letter for letter in letters if letter.merchant_id in merchant_ids]


async def test_stream_lifecycle_pins_dead_letters_and_replay(
    settings: Settings,
    kafka_bootstrap: str,
    redis: aioredis.Redis,
    keyspace: KeySpace,
    unique_name: Callable[[str], str],
) -> None:
    settings = settings.model_copy(
        update={"stream_session_timeout_s": 2.0, "kafka_topic_partitions": 1}
    )
    raw_topic = unique_name("raw")
    store_id = unique_name("store")
    merchant, stranger = unique_name("M").upper(), unique_name("X").upper()
    registry = StoreRegistry.from_mapping(
        {"stores": [{"store_id": store_id, "merchant_ids": [merchant]}]}
    )
    await ensure_topics(kafka_bootstrap, [TopicSpec(raw_topic)], 1)

    def rec(order: dict[str, Any], mid: str = merchant) -> RawOrderRecord:
        return order_record(mid, order, fetched_at_ms=CREATED_MS, source=RawSource.POLL)

    uber = {"title": "uber eats Rebecca", "externalReferenceId": UBER_REF}
    records = [
        rec(_order("O1", 100, **uber)),
        rec(_order("O2", 100, **{**uber, "title": "uber eats Sam"})),
        rec(_order("O1", 200, **uber, total=1500)),
        rec(_order("O1", 150, **uber)),
        rec(_order("O1", 200, **uber, total=1500)),
        RawOrderRecord(merchant.encode(), b'{"id": "O9", ', ()),
        rec(_order("O7", 100), mid=stranger),
        delete_record(
            merchant,
            "O2",
            fetched_at_ms=400,
            source=RawSource.WEBHOOK,
            deleted_at_ms=300,
        ),
        rec(_order("O4", 100, title="Table 4", orderType={"label": "Dine In"})),
    ]
    offsets = await _publish(kafka_bootstrap, raw_topic, records)
    topics = [store_topic(store_id), DEAD_LETTER]

    def first_done(seen: list[Any]) -> bool:
        return (
            len(_events(seen, store_id)) >= 6
            and len(_letters(seen, {merchant, stranger})) >= 2
        )

    first = await _run_stream(
        settings,
        registry,
        keyspace,
        unique_name("stream"),
        raw_topic,
        lambda: _collect(kafka_bootstrap, topics, first_done),
    )
    events = _events(first, store_id)
    kinds = [(e.order_id, e.event_type, e.order_version) for e in events]
    assert kinds == [
        ("O1", EventType.CREATED, 100),
        ("O2", EventType.CREATED, 100),
        ("O1", EventType.UPDATED, 200),
        ("O1", EventType.UPDATED, 200),
        ("O2", EventType.CANCELLED, 300),
        ("O4", EventType.CREATED, 100),
    ]
    o1_created, o2_created, o1_updated, o1_again, o2_cancelled, o4 = events
    assert o1_created.pickup.pin == o1_updated.pickup.pin == "22953"
    assert o2_created.pickup.pin != "22953", "two active orders share no PIN"
    assert o1_again.event_id == o1_updated.event_id
    assert o2_cancelled.pickup.pin == o2_created.pickup.pin
    assert o4.source.channel is Channel.IN_STORE
    assert len(o4.pickup.pin) == 6 and o4.pickup.pin.isdigit()
    assert o1_updated.total_cents == 1500

    letters = _letters(first, {merchant, stranger})
    by_reason = {letter.reason: letter for letter in letters}
    assert set(by_reason) == {"invalid_json", "no_store"}
    broken = by_reason["invalid_json"]
    assert (broken.source_topic, broken.source_offset) == (raw_topic, offsets[5])
    assert broken.original_value() == records[5].value
    assert by_reason["no_store"].merchant_id == stranger
    assert dict(by_reason["no_store"].original_headers)["source"] == "poll"

    # A second group replays every raw record: older versions are stale now, and
    # what is emitted again carries the same event ids and PINs.
    first_events = {(e.order_id, e.event_type): e for e in events}

    def replay_done(seen: list[Any]) -> bool:
        return len(_events(seen, store_id)) >= len(events) + 4

    replay = await _run_stream(
        settings,
        registry,
        keyspace,
        unique_name("replay"),
        raw_topic,
        lambda: _collect(kafka_bootstrap, topics, replay_done),
    )
    again = _events(replay, store_id)[len(events) :]
    assert [(e.order_id, e.event_type) for e in again] == [
        ("O1", EventType.UPDATED),
        ("O1", EventType.UPDATED),
        ("O2", EventType.CANCELLED),
        ("O4", EventType.CREATED),
    ]
    for event in again:
        earlier = first_events[(event.order_id, event.event_type)]
        assert event.event_id == earlier.event_id
        assert event.pickup.pin == earlier.pickup.pin
    assert json.loads(again[0].model_dump_json())["pickup"]["pin"] == "22953"
