"""A broker that goes away while the stream sends: the agent waits and sends again.

The stream runs against a broker of its own (embedded Tansu, which keeps data in
memory). When the second batch arrives (its store topic known from the first) the
broker is stopped, so that batch's sends fail; it comes back on the same port a
moment later, empty. The agent must not crash: it sends the batch's events again
until the broker acknowledges them, and only then finishes the batch (so its
offsets are committed only after that).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from lockerlink.broker import ensure_topics
from lockerlink.embedded import EmbeddedBroker, free_port
from lockerlink.keys import KeySpace
from lockerlink.registry import StoreRegistry
from lockerlink.settings import Settings
from schemas.raw_order import RawOrderRecord, RawSource, order_record
from schemas.topics import TopicSpec, store_topic
from streams.app import make_app
from tests.test_stream_app import CREATED_MS, _collect, _events, _order, _publish

pytestmark = pytest.mark.timeout(120)

DOWN_S = 3.0


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker("127.0.0.1", free_port(), None)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def test_sends_wait_out_a_broker_restart_in_order(
    own_broker: EmbeddedBroker,
    settings: Settings,
    redis: aioredis.Redis,
    keyspace: KeySpace,
    unique_name: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    bootstrap = own_broker.bootstrap_servers
    settings = settings.model_copy(
        update={
            "kafka_bootstrap_servers": bootstrap,
            "stream_session_timeout_s": 2.0,
            "kafka_topic_partitions": 1,
            "stream_send_timeout_s": 1.0,
        }
    )
    raw_topic, store_id = unique_name("raw"), unique_name("store")
    merchant = unique_name("M").upper()
    registry = StoreRegistry.from_mapping(
        {"stores": [{"store_id": store_id, "merchant_ids": [merchant]}]}
    )

    def rec(order: dict[str, Any]) -> RawOrderRecord:
        return order_record(
            merchant, order, fetched_at_ms=CREATED_MS, source=RawSource.POLL
        )

    await ensure_topics(bootstrap, [TopicSpec(raw_topic)], 1)
    await _publish(bootstrap, raw_topic, [rec(_order("O1", 100))])

    batches: list[int] = []
    produced: list[tuple[int, bool]] = []
    restarted, back = asyncio.Event(), asyncio.Event()
    pending: list[asyncio.Task[None]] = []

    async def restart() -> None:
        await asyncio.sleep(DOWN_S)
        restarted.set()  # from here on a send may be acknowledged
        await asyncio.to_thread(own_broker.start)
        back.set()

    def on_batch() -> None:
        batches.append(len(batches))
        if len(batches) == 2:  # this batch's sends will find no broker
            own_broker.stop()
            pending.append(asyncio.create_task(restart()))

    app = make_app(
        settings,
        registry,
        keyspace=keyspace,
        app_id=unique_name("stream"),
        raw_topic=raw_topic,
        on_batch=on_batch,
        on_produced=lambda n: produced.append((n, restarted.is_set())),
    )
    # Faust sets up logging as it starts; a handler on the module's logger stays.
    stream_log = logging.getLogger("streams.app")
    stream_log.addHandler(caplog.handler)
    topics = [store_topic(store_id)]
    await app.start()
    try:
        first = await _collect(bootstrap, topics, lambda seen: bool(seen))
        assert [e.order_id for e in _events(first, store_id)] == ["O1"]
        await _publish(
            bootstrap, raw_topic, [rec(_order("O1", 200)), rec(_order("O3", 100))]
        )
        await asyncio.wait_for(back.wait(), timeout=30)
        for _ in range(300):
            if len(produced) >= 2:
                break
            await asyncio.sleep(0.1)
        # The broker came back empty; the raw topic is made again so the worker
        # stops as it would on a live broker.
        await ensure_topics(bootstrap, [TopicSpec(raw_topic)], 1)
    finally:
        stream_log.removeHandler(caplog.handler)
        await app.stop()
        for task in pending:
            await task

    assert produced == [(1, False), (2, True)], (
        "the agent lived on, and the broker acknowledged the failed batch's two "
        "events only after it came back"
    )
    retries = [r for r in caplog.records if r.getMessage().startswith("send failed")]
    assert retries, "the failed sends were retried, not fatal"
    assert all("0 of 2 outputs acknowledged" in r.getMessage() for r in retries)
