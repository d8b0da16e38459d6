"""Kafka helpers against the real broker."""

from __future__ import annotations

from collections.abc import Callable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from lockerlink.broker import ensure_topics, make_consumer, make_producer
from schemas.topics import TopicSpec


async def test_ensure_topics_creates_missing_topics_once(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    plain, compacted = unique_name("plain"), unique_name("compacted")
    specs = [TopicSpec(plain), TopicSpec(compacted, compacted=True)]

    assert sorted(await ensure_topics(kafka_bootstrap, specs, 2)) == sorted(
        [plain, compacted]
    )
    assert await ensure_topics(kafka_bootstrap, specs, 2) == []

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, compacted)]
        )
        entries = described[0].resources[0][4]
        config = {entry[0]: entry[1] for entry in entries}
        assert config.get("cleanup.policy") == "compact"
    finally:
        await admin.close()


async def test_produced_records_are_consumed_in_order_per_key(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("order")
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic)], 3)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        for i in range(50):
            await producer.send(topic, key=b"store-a", value=str(i).encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = make_consumer(kafka_bootstrap, unique_name("group"))
    consumer.subscribe([topic])
    await consumer.start()
    try:
        seen: list[int] = []
        while len(seen) < 50:
            batch = await consumer.getmany(timeout_ms=2000)
            assert batch, "broker returned nothing within 2 s"
            for records in batch.values():
                seen.extend(int(r.value or b"-1") for r in records)
        assert seen == list(range(50))
    finally:
        await consumer.stop()
