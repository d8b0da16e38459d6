"""Sends raw order records to Kafka and waits until the broker acknowledged all."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from lockerlink.errors import BrokerError
from schemas.raw_order import RawOrderRecord
from schemas.topics import RAW_ORDERS


class RawPublisher:
    """Publishes to `clover.orders.raw` (or another topic, for tests)."""

    def __init__(self, producer: AIOKafkaProducer, topic: str = RAW_ORDERS) -> None:
        self._producer = producer
        self.topic = topic
        self.published = 0

    async def publish(self, records: Sequence[RawOrderRecord]) -> None:
        """Send every record and return once Kafka acknowledged every one of them."""
        if not records:
            return
        try:
            futures = [
                await self._producer.send(
                    self.topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers),
                )
                for record in records
            ]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise BrokerError(
                f"cannot publish {len(records)} raw order record(s) to "
                f"{self.topic}: {exc}"
            ) from exc
        self.published += len(records)
