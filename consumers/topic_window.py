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
    consumer: AIOKafkaConsumer, topic: str, since_ms: int | None
) -> list[PartitionWindow]:
    """Per partition, from the first offset stamped at or after ``since_ms`` to the end.

    The end is where each partition ends now; callers keep only records whose own
    timestamp is inside their window. That costs reading the tail, but stays right on
    any broker: the embedded Tansu answers every time lookup with the partition's
    first offset, which only makes the window start earlier, never later.
    """
    partitions = await partitions_of(consumer, topic)
    beginnings = await consumer.beginning_offsets(partitions)
    ends = await consumer.end_offsets(partitions)
    if since_ms is None:
        return [PartitionWindow(tp, beginnings[tp], ends[tp]) for tp in partitions]
    found = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
    # No record at or after the time: nothing to read in that partition.
    return [
        PartitionWindow(
            tp,
            found[tp].offset if found.get(tp) is not None else ends[tp],
            ends[tp],
        )
        for tp in partitions
    ]


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
