"""Publishing token rotations and merchant state changes, never a token.

Events go to `clover.token-rotations` keyed by merchant id (compacted: the latest
event per merchant is its current state). A failed publish is logged and counted;
the rotation itself is already durable in Redis and is never undone for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from lockerlink.broker import make_producer
from lockerlink.errors import BrokerError
from schemas.token_rotation import TokenRotationEvent
from schemas.topics import TOKEN_ROTATIONS

log = logging.getLogger(__name__)


class RotationPublisher(Protocol):
    """Anything that can publish a rotation event."""

    async def publish(self, event: TokenRotationEvent) -> None: ...

    async def close(self) -> None: ...


class KafkaRotationPublisher:
    """Publishes rotation events with lockerlink's standard producer."""

    def __init__(self, bootstrap_servers: str, topic: str = TOKEN_ROTATIONS) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topic = topic
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def publish(self, event: TokenRotationEvent) -> None:
        producer = await self._started()
        try:
            await producer.send_and_wait(
                self._topic,
                key=event.merchant_id.encode(),
                value=event.model_dump_json().encode(),
            )
        except KafkaError as exc:
            raise BrokerError(
                f"cannot publish rotation of merchant {event.merchant_id}: {exc}"
            ) from exc

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                producer = make_producer(self._bootstrap_servers)
                try:
                    await producer.start()
                except KafkaError as exc:
                    await producer.stop()
                    raise BrokerError(
                        f"cannot reach Kafka at {self._bootstrap_servers}: {exc}"
                    ) from exc
                self._producer = producer
            return self._producer


class CallbackRotationPublisher:
    """Hands each event to a coroutine function (in-process listeners, tests)."""

    def __init__(self, callback: Callable[[TokenRotationEvent], Awaitable[None]]):
        self._callback = callback

    async def publish(self, event: TokenRotationEvent) -> None:
        await self._callback(event)

    async def close(self) -> None:
        return None
