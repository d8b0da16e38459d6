"""Baseline: what the embedded broker itself moves, for other benchmarks to compare.

Produces N small records with aiokafka and consumes them back; later benchmarks that
go through the broker can show how far they are from this floor.
"""

from __future__ import annotations

import time

from bench.report import Section
from lockerlink.broker import ensure_topics, make_consumer, make_producer
from lockerlink.embedded import EmbeddedBroker, free_port
from schemas.topics import TopicSpec

RECORDS = 20_000
VALUE = b"x" * 600  # about the size of one locker order event


async def _produce(bootstrap: str, topic: str) -> float:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        started = time.perf_counter()
        for i in range(RECORDS):
            await producer.send(topic, key=f"store-{i % 50}".encode(), value=VALUE)
        await producer.flush()
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str) -> float:
    consumer = make_consumer(bootstrap, f"bench-{topic}")
    consumer.subscribe([topic])
    await consumer.start()
    try:
        started = time.perf_counter()
        seen = 0
        while seen < RECORDS:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            seen += sum(len(records) for records in batch.values())
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def run() -> Section:
    section = Section(
        "broker",
        "Embedded broker baseline (Tansu, aiokafka clients)",
        ".venv/bin/python -m bench broker",
    )
    with EmbeddedBroker("127.0.0.1", free_port(), None) as broker:
        bootstrap = f"127.0.0.1:{broker.port}"
        topic = "bench-broker"
        await ensure_topics(bootstrap, [TopicSpec(topic)], 3)
        produce_s = await _produce(bootstrap, topic)
        consume_s = await _consume(bootstrap, topic)
    section.add(
        f"produce {RECORDS} x {len(VALUE)} B, acks=all",
        f"{RECORDS / produce_s:,.0f} records/s",
        "baseline",
    )
    section.add(
        f"consume {RECORDS} records, one group member",
        f"{RECORDS / consume_s:,.0f} records/s",
        "baseline",
    )
    return section
