"""Records in and out of the stream, independent of the Kafka client that moves them."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.raw_order import KafkaHeaders, RawOrderHeaders


@dataclass(frozen=True)
class RawRecord:
    """One record read from `clover.orders.raw`, with where it sits."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: KafkaHeaders = ()
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Output:
    """One record the stream produces: a locker order event or a dead letter."""

    topic: str
    key: bytes | None
    value: bytes
    # The raw record it was made from (None: not made from one).
    source: RawRecord | None = field(default=None, compare=False, repr=False)


def merchant_of(record: RawRecord) -> str | None:
    """The record's key, else its merchant header (headers are read only then)."""
    if record.key:
        key = record.key.decode("utf-8", errors="replace").strip()
        if key:
            return key
    return RawOrderHeaders.from_kafka(record.headers).merchant_id
