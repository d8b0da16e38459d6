"""Reading a bounded stretch of a topic: from offsets found by time up to its end.

Replay and the dead-letter tools read topics this way, without a consumer group and
without committing anything, so they never disturb the delivery service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from consumers.store_lane import Record
from lockerlink.broker import make_consumer
from lockerlink.errors import BrokerError


@dataclass(frozen=True)
class PartitionWindow:
    """Offsets ``[start, end)`` of one partition."""

    tp: TopicPartition
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic``; a missing topic is a clear error."""
    await consumer.topics()  # refreshes metadata for every topic
    numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        raise BrokerError(f"topic {topic} does not exist", retriable=False)
    return [TopicPartition(topic, n) for n in sorted(numbers)]


async def windows_by_time(
    consumer: AIOKafkaConsumer,
    topic: str,
    since_ms: int | None,
    until_ms: int | None,
) -> list[PartitionWindow]:
    """Per partition, the offsets of records stamped in ``[since_ms, until_ms)``."""
    partitions = await partitions_of(consumer, topic)
    beginnings = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    starts = await _offsets_at(consumer, partitions, since_ms, beginnings, ends)
    stops = await _offsets_at(consumer, partitions, until_ms, ends, ends)
    return [PartitionWindow(tp, starts[tp], stops[tp]) for tp in partitions]


async def _offsets_at(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    at_ms: int | None,
    default: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
) -> dict[TopicPartition, int]:
    if at_ms is None:
        return dict(default)
    found = await consumer.offsets_for_times({tp: at_ms for tp in partitions})
    # No record at or after the time: the window reaches the current end.
    return {
        tp: (found[tp].offset if found.get(tp) is not None else ends[tp])
        for tp in partitions
    }


async def read_windows(
    consumer: AIOKafkaConsumer, windows: list[PartitionWindow]
) -> AsyncIterator[Record]:
    """Yield each window's records in offset order, one partition after another."""
    for window in windows:
        if window.size == 0:
            continue
        consumer.assign([window.tp])
        consumer.seek(window.tp, window.start)
        position = window.start
        while position < window.end:
            batch = await consumer.getmany(window.tp, timeout_ms=1000, max_records=500)
            for record in batch.get(window.tp, []):
                if record.offset >= window.end:
                    break
                position = record.offset + 1
                yield record


def reader(bootstrap_servers: str) -> AIOKafkaConsumer:
    """A consumer without a group that reads windows and commits nothing."""
    return make_consumer(bootstrap_servers, None, enable_auto_commit=False)
