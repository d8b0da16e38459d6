"""Kafka clients configured the same way everywhere, and topic creation.

The embedded broker (Tansu) has no idempotent producer and no transactions, so
producers run with ``enable_idempotence=False`` and ``acks="all"``; ordering within a
partition is then kept by allowing one in-flight request per connection.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from lockerlink.errors import BrokerError
from schemas.topics import TopicSpec

log = logging.getLogger(__name__)


def make_producer(bootstrap_servers: str, **overrides: Any) -> AIOKafkaProducer:
    """A producer whose acknowledged sends are durable and ordered per partition."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": 5,
        "request_timeout_ms": 15_000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(
    bootstrap_servers: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer that commits by hand, only after the work is durable."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_uncommitted",
    }
    options.update(overrides)
    return AIOKafkaConsumer(**options)


async def start_client(
    client: AIOKafkaProducer | AIOKafkaConsumer, bootstrap_servers: str
) -> None:
    """``client.start()``; a broker out of reach is `BrokerError`, client closed."""
    try:
        await client.start()
    except KafkaError as exc:
        with contextlib.suppress(Exception):
            await client.stop()
        raise BrokerError(
            f"cannot reach the broker at {bootstrap_servers}: {type(exc).__name__}"
        ) from exc


async def ensure_topics(
    bootstrap_servers: str, specs: Iterable[TopicSpec], partitions: int
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [s for s in specs if s.name not in existing]
        if not wanted:
            return []
        new = [
            NewTopic(s.name, partitions, 1, topic_configs=s.configs()) for s in wanted
        ]
        # Another process may win the race; the topic is there either way.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(new)
        for spec in wanted:
            log.info("topic created", extra={"topic": spec.name})
        return [s.name for s in wanted]
    except KafkaError as exc:
        raise BrokerError(
            f"cannot create topics on {bootstrap_servers}: {exc}"
        ) from exc
    finally:
        await admin.close()
