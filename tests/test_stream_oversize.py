"""An output the broker refuses as too large is dead-lettered without its bytes.

A raw record near the broker's limit that cannot be read makes a dead letter a
third larger than itself (base64), which the broker would refuse on every try: the
stream must not retry it forever and stall the partition. It sends a dead letter
naming where the raw record sits instead, goes on with the next record, and a
re-drive of that letter is refused (it has nothing to send back).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka.errors import MessageSizeTooLargeError

from consumers.dlq import Filters, list_entries, redrive
from lockerlink.broker import ensure_topics
from lockerlink.keys import KeySpace
from lockerlink.registry import StoreRegistry
from lockerlink.settings import Settings
from schemas.dead_letter import DeadLetter
from schemas.raw_order import RawOrderRecord, RawSource, order_record
from schemas.topics import DEAD_LETTER, TopicSpec, store_topic
from streams.dead_letters import too_large
from streams.record import Output, RawRecord
from tests.test_stream_app import (
    CREATED_MS,
    _collect,
    _events,
    _order,
    _publish,
    _run_stream,
)

pytestmark = pytest.mark.timeout(90)

# Under the producer's 1 MiB request limit; its dead letter (base64) is over it.
BIG = 900_000


async def test_a_dead_letter_too_large_to_send_is_sent_without_its_record(
    settings: Settings,
    kafka_bootstrap: str,
    redis: aioredis.Redis,
    keyspace: KeySpace,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    settings = settings.model_copy(
        update={"stream_session_timeout_s": 2.0, "kafka_topic_partitions": 1}
    )
    raw_topic, store_id = unique_name("raw"), unique_name("store")
    merchant = unique_name("M").upper()
    registry = StoreRegistry.from_mapping(
        {"stores": [{"store_id": store_id, "merchant_ids": [merchant]}]}
    )
    await ensure_topics(kafka_bootstrap, [TopicSpec(raw_topic)], 1)
    huge = RawOrderRecord(
        merchant.encode(),
        b'{"id": "' + b"x" * BIG,
        (("merchant_id", merchant.encode()),),
    )
    good = order_record(
        merchant, _order("O1", 100), fetched_at_ms=CREATED_MS, source=RawSource.POLL
    )
    offsets = await _publish(kafka_bootstrap, raw_topic, [huge, good])

    def mine(seen: list[Any]) -> list[DeadLetter]:
        letters = [
            DeadLetter.model_validate_json(r.value)
            for r in seen
            if r.topic == DEAD_LETTER
        ]
        return [
            letter
            for letter in letters
            if letter.merchant_id == merchant and letter.source_topic == raw_topic
        ]

    def done(seen: list[Any]) -> bool:
        return bool(_events(seen, store_id)) and bool(mine(seen))

    seen = await _run_stream(
        settings,
        registry,
        keyspace,
        unique_name("stream"),
        raw_topic,
        lambda: _collect(kafka_bootstrap, [store_topic(store_id), DEAD_LETTER], done),
    )
    [letter] = mine(seen)
    assert (letter.reason, letter.error_class) == (
        "too_large",
        "ProducerSendError",
    )
    assert letter.original_omitted and letter.original_value_b64 == ""
    assert (letter.source_partition, letter.source_offset) == (0, offsets[0])
    assert letter.original_key() == merchant.encode()
    assert "dead letter (invalid_json" in letter.detail
    assert f"{raw_topic}/0@{offsets[0]}" in letter.detail
    assert [e.order_id for e in _events(seen, store_id)] == ["O1"]

    [entry] = [
        e
        for e in await list_entries(kafka_bootstrap, Filters(reason="too_large"))
        if e.letter.source_topic == raw_topic
    ]
    [result] = await redrive(kafka_bootstrap, [entry], data_dir=tmp_path, force=True)
    assert not result.sent
    assert f"{raw_topic}/0@{offsets[0]}" in str(result.refused_because)


def test_an_event_too_large_becomes_a_dead_letter_for_its_store_and_merchant() -> None:
    source = RawRecord(
        "clover.orders.raw", 3, 99, b"MBIG", b"{}", (("merchant_id", b"MBIG"),)
    )
    out = Output(store_topic("big-store"), b"big-store", b"{" * 2_000_000, source)
    replaced = too_large(out, MessageSizeTooLargeError("2000000 bytes"))
    assert replaced.topic == DEAD_LETTER and replaced.key == b"MBIG"
    letter = DeadLetter.model_validate_json(replaced.value)
    assert (letter.store_id, letter.merchant_id) == ("big-store", "MBIG")
    assert letter.reason == "too_large" and letter.original_omitted
    assert "event for lockers.big-store.orders of 2000000 bytes" in letter.detail
    assert len(replaced.value) < 2_000
