"""Dead letters are counted and reported to Sentry without the order's content."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
import sentry_sdk
from aiohttp import web

from lockerlink.embedded import free_port
from lockerlink.registry import Store, StoreRegistry
from lockerlink.sentry import init_sentry
from lockerlink.settings import Settings
from schemas.dead_letter import DeadLetter
from schemas.raw_order import RawSource, order_record
from schemas.topics import DEAD_LETTER, RAW_ORDERS
from streams.app import StreamWorker
from streams.dead_letters import DEAD_LETTERS, dead_letter
from streams.ledger import MemoryLedger
from streams.processor import OrderProcessor
from streams.record import RawRecord
from tests.sentry_ingest import SentryIngest

ORDER = {
    "id": "DLORDER000001",
    "modifiedTime": 1733095800000,
    "title": "uber eats Rebecca",
    "note": "Rebecca Smith\nUBER EATS\n+1 416 555 0199",
}


@pytest.fixture
async def ingest_dsn() -> AsyncIterator[tuple[SentryIngest, str]]:
    server = SentryIngest()
    runner = web.AppRunner(server.app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield server, f"http://publickey@127.0.0.1:{port}/1"
    finally:
        sentry_sdk.get_client().close(timeout=1)
        await runner.cleanup()


async def _nobody(merchant_id: str) -> Store | None:
    return None


async def test_merchant_without_store_is_dead_lettered_counted_and_reported(
    ingest_dsn: tuple[SentryIngest, str],
) -> None:
    server, dsn = ingest_dsn
    init_sentry(Settings(sentry_dsn=dsn), component="stream")
    raw = order_record("MNOSTORE", ORDER, fetched_at_ms=5, source=RawSource.WEBHOOK)
    record = RawRecord(RAW_ORDERS, 2, 41, raw.key, raw.value, raw.headers)
    before = DEAD_LETTERS.labels(reason="no_store")._value.get()

    (out,) = await OrderProcessor(_nobody, MemoryLedger()).process([record])
    await asyncio.to_thread(sentry_sdk.flush, 5)

    assert out.topic == DEAD_LETTER and out.key == b"MNOSTORE"
    letter = DeadLetter.model_validate_json(out.value)
    assert (letter.reason, letter.error_class) == ("no_store", "InputError")
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        RAW_ORDERS,
        2,
        41,
    )
    assert letter.original_value() == raw.value
    assert letter.original_key() == b"MNOSTORE"
    assert dict(letter.original_headers) == {
        "merchant_id": "MNOSTORE",
        "fetched_at_ms": "5",
        "source": "webhook",
    }
    assert DEAD_LETTERS.labels(reason="no_store")._value.get() == before + 1

    assert len(server.events) == 1
    tags = server.events[0]["tags"]
    assert tags["reason"] == "no_store" and tags["merchant"] == "MNOSTORE"
    sent = b"".join(server.raw_bodies)
    for secret in (b"Rebecca", b"555 0199", b"UBER EATS", json.dumps(ORDER).encode()):
        assert secret not in sent


async def test_a_bad_record_does_not_stop_the_good_ones_around_it() -> None:
    store = Store(store_id="dl-store")

    async def resolve(merchant_id: str) -> Store | None:
        return store

    good = order_record("M1", ORDER, fetched_at_ms=1, source=RawSource.POLL)
    records = [
        RawRecord(RAW_ORDERS, 0, 1, b"M1", b"\xff\xfe not json", ()),
        RawRecord(RAW_ORDERS, 0, 2, good.key, good.value, good.headers),
        RawRecord(RAW_ORDERS, 0, 3, b"M1", b"[1, 2, 3]", ()),
        RawRecord(RAW_ORDERS, 0, 4, b"M1", None, ()),
    ]
    outputs = await OrderProcessor(resolve, MemoryLedger()).process(records)
    assert [out.topic for out in outputs] == [
        DEAD_LETTER,
        "lockers.dl-store.orders",
        DEAD_LETTER,
        DEAD_LETTER,
    ]
    reasons = [
        DeadLetter.model_validate_json(out.value).reason
        for out in outputs
        if out.topic == DEAD_LETTER
    ]
    assert reasons == ["invalid_json", "not_an_order", "not_an_order"]


async def test_reporting_a_dead_letter_while_redis_is_away_does_not_stop_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The letter names a merchant but no store: the report looks the store up in
    # Redis, which is not there. The letter is already on the broker; the worker
    # warns and goes on instead of raising out of the agent.
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    worker = StreamWorker(settings, StoreRegistry.from_mapping({"stores": []}))
    record = RawRecord(RAW_ORDERS, 0, 7, b"MAWAY", b"not json", ())
    out = dead_letter(
        record,
        reason="invalid_json",
        detail="not JSON",
        error_class="InputError",
        merchant_id="MAWAY",
    )
    try:
        with caplog.at_level(logging.WARNING, logger="streams.dead_letter_report"):
            await worker.produced([out])
    finally:
        await worker.close()
    (line,) = [r for r in caplog.records if r.name == "streams.dead_letter_report"]
    assert "dead letter not reported: RedisUnavailable" in line.getMessage()
