"""Closes the gap between Kafka's acknowledgement and the published-versions ledger.

Kafka and Redis cannot be written atomically together, and the broker here has no
transactions. So before sending, the poller notes in Redis which versions it is
about to publish and when; after the ledger has them the note goes. A poller that
finds a note when it takes a merchant over knows its predecessor died in between:
it reads the merchant's records sent since the note's time back from the topic and
puts the versions it finds into the ledger, so none is published a second time,
and those not found are published again by the next poll.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from lockerlink.broker import make_consumer
from lockerlink.errors import BrokerError
from lockerlink.keys import KeySpace
from lockerlink.redis_store import RedisUnavailable
from producers.ledger import DELETED_BASE

log = logging.getLogger(__name__)

Version = tuple[str, float]

# Records are stamped by the producer's clock when sent; reading from a little
# before the note's time covers clocks that disagree slightly.
_READ_BACK_MARGIN_MS = 5_000
READ_BACK_LIMIT_S = 30.0


@dataclass(frozen=True)
class JournalEntry:
    """Versions a poller was about to publish, and when it started sending."""

    at_ms: int
    versions: tuple[Version, ...]


class PublishJournal:
    """One note per merchant in Redis: what is being published right now."""

    def __init__(self, redis: aioredis.Redis, keys: KeySpace) -> None:
        self._redis = redis
        self._keys = keys

    async def begin(
        self, merchant_id: str, at_ms: int, versions: Sequence[Version]
    ) -> None:
        note = json.dumps({"at_ms": at_ms, "versions": [list(v) for v in versions]})
        try:
            await self._redis.set(self._keys.publish_journal(merchant_id), note)
        except RedisError as exc:
            raise RedisUnavailable(f"cannot note a publish: {exc}") from exc

    async def end(self, merchant_id: str) -> None:
        try:
            await self._redis.delete(self._keys.publish_journal(merchant_id))
        except RedisError as exc:
            raise RedisUnavailable(f"cannot clear a publish note: {exc}") from exc

    async def read(self, merchant_id: str) -> JournalEntry | None:
        try:
            raw = await self._redis.get(self._keys.publish_journal(merchant_id))
        except RedisError as exc:
            raise RedisUnavailable(f"cannot read a publish note: {exc}") from exc
        if raw is None:
            return None
        data = json.loads(raw)
        versions = tuple((str(o), float(v)) for o, v in data["versions"])
        return JournalEntry(int(data["at_ms"]), versions)


def _version_of(value: bytes) -> Version | None:
    try:
        body = json.loads(value)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        return None
    if body.get("deleted") is True:
        return body["id"], DELETED_BASE
    modified = body.get("modifiedTime")
    return (body["id"], float(modified)) if isinstance(modified, int) else None


class TopicReader:
    """Reads back what was published for one merchant since a moment."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic

    async def versions_since(self, merchant_id: str, since_ms: int) -> set[Version]:
        """(order id, version) of the merchant's records sent since ``since_ms``.

        Delete records come back with the version `DELETED_BASE`.
        """
        consumer = make_consumer(self._bootstrap, None)
        key = merchant_id.encode()
        found: set[Version] = set()
        try:
            await consumer.start()
            await consumer.topics()  # loads the topic's partitions
            partitions = [
                TopicPartition(self._topic, p)
                for p in consumer.partitions_for_topic(self._topic) or ()
            ]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.offsets_for_times(
                dict.fromkeys(partitions, max(0, since_ms - _READ_BACK_MARGIN_MS))
            )
            pending = {}
            for tp in partitions:
                start = starts.get(tp)
                if start is not None and start.offset < ends[tp]:
                    consumer.seek(tp, start.offset)
                    pending[tp] = ends[tp]
            deadline = time.monotonic() + READ_BACK_LIMIT_S
            while pending:
                if time.monotonic() > deadline:
                    raise BrokerError(f"reading back {self._topic} took too long")
                batch = await consumer.getmany(*pending, timeout_ms=1000)
                for tp, records in batch.items():
                    for record in records:
                        if record.key == key and record.value is not None:
                            version = _version_of(record.value)
                            if version is not None:
                                found.add(version)
                        if record.offset + 1 >= pending.get(tp, 0):
                            pending.pop(tp, None)
        except KafkaError as exc:
            raise BrokerError(f"cannot read back {self._topic}: {exc}") from exc
        finally:
            await consumer.stop()
        return found


def confirmed(entry: JournalEntry, found: set[Version]) -> list[Version]:
    """The noted versions that did reach the topic."""
    present = []
    for order_id, version in entry.versions:
        probe = (order_id, DELETED_BASE if version >= DELETED_BASE else version)
        if probe in found:
            present.append((order_id, version))
    return present
