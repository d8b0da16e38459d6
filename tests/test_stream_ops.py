"""The stream worker's ops endpoints, metrics, status board and dead-letter mail.

The Faust app runs in this process against the real broker and Redis; its /metrics
is scraped over HTTP while it turns raw records into events and dead letters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from lockerlink.broker import ensure_topics, make_producer
from lockerlink.embedded import free_port
from lockerlink.keys import KeySpace
from lockerlink.registry import StoreRegistry
from lockerlink.settings import Settings
from lockerlink.status import StatusBoard
from schemas.raw_order import RawOrderRecord, RawSource, order_record
from schemas.topics import TopicSpec
from streams.app import make_app
from tests.mail_inbox import Inbox
from tests.ops_probe import OpsProbe
from tests.poller_support import eventually

pytestmark = pytest.mark.timeout(90)

RECORDS = "lockerlink_stream_records_total"


def _order(order_id: str) -> dict[str, Any]:
    return {
        "id": order_id,
        "modifiedTime": 1_733_095_800_000,
        "createdTime": 1_733_095_800_000,
        "total": 1200,
        "lineItems": {"elements": [{"name": "Pho", "price": 1200}]},
    }


async def _publish(bootstrap: str, topic: str, records: list[RawOrderRecord]) -> None:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(
                topic, record.value, key=record.key, headers=list(record.headers)
            )
    finally:
        await producer.stop()


async def _dead_letters_on_board(board: StatusBoard, store_id: str) -> int:
    stores = (await board.read()).stores
    return sum(s.dead_letters for s in stores if s.store_id == store_id)


async def test_stream_serves_ops_counts_records_and_reports_dead_letters(
    settings: Settings,
    kafka_bootstrap: str,
    redis: aioredis.Redis,
    keyspace: KeySpace,
    smtp_inbox: tuple[Inbox, int],
    unique_name: Callable[[str], str],
) -> None:
    inbox, smtp_port = smtp_inbox
    settings = settings.model_copy(
        update={
            "stream_session_timeout_s": 2.0,
            "kafka_topic_partitions": 1,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "alert_email_to": "ops@example.test",
            "alert_dead_letters_quiet_s": 1.0,
        }
    )
    raw_topic, store_id = unique_name("raw"), unique_name("store")
    merchant, stranger = unique_name("M").upper(), unique_name("X").upper()
    registry = StoreRegistry.from_mapping(
        {"stores": [{"store_id": store_id, "merchant_ids": [merchant]}]}
    )
    await ensure_topics(kafka_bootstrap, [TopicSpec(raw_topic)], 1)
    ops_port = free_port()
    app = make_app(
        settings,
        registry,
        keyspace=keyspace,
        app_id=unique_name("stream"),
        raw_topic=raw_topic,
        ops_port=ops_port,
    )
    probe = OpsProbe(f"http://127.0.0.1:{ops_port}")
    await app.start()
    try:
        await probe.wait_ready()
        assert await probe.status("/healthz") == 200
        before = await probe.value(RECORDS) or 0.0

        def rec(order_id: str, merchant_id: str = merchant) -> RawOrderRecord:
            return order_record(
                merchant_id, _order(order_id), fetched_at_ms=1, source=RawSource.POLL
            )

        await _publish(
            kafka_bootstrap,
            raw_topic,
            [
                rec("O1"),
                rec("O2"),
                RawOrderRecord(merchant.encode(), b'{"id": "O9", ', ()),
                rec("O7", stranger),
            ],
        )
        await probe.wait_value(RECORDS, before + 4)
        board = StatusBoard(redis, keyspace)

        async def on_board() -> bool:
            return (
                await _dead_letters_on_board(board, store_id) == 1
                and await _dead_letters_on_board(board, "(unknown)") == 1
            )

        await eventually(on_board, "both dead letters on the status board")
        await eventually(
            lambda: "[lockerlink] RESOLVED: New dead letters" in inbox.subjects(),
            "the dead-letter all-clear",
        )
        assert inbox.subjects() == [
            "[lockerlink] New dead letters",
            "[lockerlink] RESOLVED: New dead letters",
        ]
    finally:
        await app.stop()
