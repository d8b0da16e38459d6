"""The stream: the pure transform on one core, and the Faust worker end to end.

1. The pure transform (parse, detect, draft, finish, serialise) of a realistic
   five-item delivery order, against plain ``json.loads`` + ``json.dumps`` of the
   same bytes, interleaved in the same run.
2. The Faust worker end to end (raw topic in, store topics out, PINs and versions in
   Redis) against a plain aiokafka consume-transform-produce loop running the same
   `OrderProcessor`. Each runs in its own process on its own raw topic, its own
   Redis key prefix and the same embedded broker; the figure is the rate from the
   first record handled to the last output acknowledged, and the process's peak
   resident memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.report import Section
from lockerlink.broker import ensure_topics, make_consumer, make_producer
from lockerlink.embedded import EmbeddedBroker, free_port
from lockerlink.keys import KeySpace
from lockerlink.registry import Store, StoreRegistry
from lockerlink.settings import Settings
from schemas.locker_order import EventType
from schemas.raw_order import RawSource, order_record
from schemas.topics import TopicSpec, store_topic
from streams.transform import draft_order, finish, read_record

TRANSFORM_ROUNDS = 5
TRANSFORM_ORDERS = 4_000
E2E_ORDERS = 10_000
MERCHANTS = 10
TARGET_TRANSFORM = 10_000
TARGET_WORKER = 2_000
TARGET_RATIO = 0.5
REDIS_URL = os.environ.get("LOCKERLINK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

TITLES = ["uber eats Rebecca", "e24 Ashley A", "jessica grubhub", "Table 12", "dd mike"]


def sample_order(index: int = 0, merchant_id: str = "BENCHMERCHANT") -> dict[str, Any]:
    """A realistic delivery order: five lines (one repeated), modifiers, a note."""
    return {
        "id": f"BENCH{index:08d}",
        "merchant": {"id": merchant_id},
        "currency": "USD",
        "total": "5375",
        "title": TITLES[index % len(TITLES)] + " ",
        "note": "Joe Martin\nUBER EATS\nDELIVERY 18:37\nRef: 4F2A",
        "externalReferenceId": "a3c1e2f4-1b2c-4d5e-8f90-123456abc953",
        "state": "locked",
        "paymentState": "PAID",
        "createdTime": 1733095800000,
        "clientCreatedTime": 1733095790000,
        "modifiedTime": 1733095800000 + index,
        "orderType": {
            "id": "8ZP0B6D6JCK1A",
            "label": "Pick Up",
            "labelKey": "com.clover.order.type.pick_up",
            "systemOrderTypeId": "PICK-UP-TYPE",
        },
        "customers": {
            "elements": [
                {
                    "id": "C1",
                    "firstName": "joe",
                    "lastName": "Martin",
                    "phoneNumbers": {"elements": [{"phoneNumber": "+1 416 555 0199"}]},
                }
            ]
        },
        "lineItems": {
            "elements": [
                _line("Pho Tai ", 1450, [("extra noodles", 200)]),
                _line("Pho Tai ", 1450, [("extra noodles", 200)]),
                _line("Spring Rolls", "650", []),
                _line("Vietnamese Iced Coffee", 525, [("less sugar", 0)]),
                {**_line("Lychee", 899, []), "unitQty": 1250, "unitName": "lb"},
            ]
        },
    }


def _line(name: str, price: int | str, mods: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "id": f"LI{abs(hash(name)) % 10_000:04d}",
        "name": name,
        "price": price,
        "printed": "true",
        "modifications": {
            "elements": [{"id": "MOD1", "name": n, "amount": a} for n, a in mods]
        },
    }


def _transform_rate(raw: bytes, store: Store) -> float:
    started = time.process_time()
    for _ in range(TRANSFORM_ORDERS):
        parsed = read_record(raw)
        assert not isinstance(parsed, type(None))
        drafted = draft_order(parsed, store=store, merchant_id="M")  # type: ignore[arg-type]
        event = finish(
            drafted.draft,
            event_type=EventType.CREATED,
            pin=drafted.pin_plan.candidates[0],
            policy=drafted.pin_plan.policy,
        )
        event.model_dump_json()
    return TRANSFORM_ORDERS / (time.process_time() - started)


def _json_rate(raw: bytes) -> float:
    started = time.process_time()
    for _ in range(TRANSFORM_ORDERS):
        json.dumps(json.loads(raw))
    return TRANSFORM_ORDERS / (time.process_time() - started)


def measure_transform() -> tuple[float, float]:
    """Best of interleaved rounds: (transform orders/s, json round trips/s).

    Rates are per second of this process's CPU time, so other work on a shared
    machine slows them less than it would wall-clock rates.
    """
    raw = json.dumps(sample_order()).encode()
    store = Store(store_id="bench", timezone="America/Toronto")
    transform, plain = 0.0, 0.0
    for _ in range(TRANSFORM_ROUNDS):
        transform = max(transform, _transform_rate(raw, store))
        plain = max(plain, _json_rate(raw))
    return transform, plain


# -- End to end -----------------------------------------------------------------------


def _registry(merchants: list[str]) -> StoreRegistry:
    return StoreRegistry.from_mapping(
        {
            "stores": [
                {"store_id": f"bench-{i}", "merchant_ids": [m]}
                for i, m in enumerate(merchants)
            ]
        }
    )


def _merchants() -> list[str]:
    return [f"BENCHM{i:03d}" for i in range(MERCHANTS)]


async def _publish_raw(bootstrap: str, topic: str, count: int) -> None:
    merchants = _merchants()
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for index in range(count):
            merchant = merchants[index % len(merchants)]
            record = order_record(
                merchant,
                sample_order(index, merchant),
                fetched_at_ms=1733095800000,
                source=RawSource.POLL,
            )
            await producer.send(
                topic, record.value, key=record.key, headers=list(record.headers)
            )
        await producer.flush()
    finally:
        await producer.stop()


class _Meter:
    """Counts outputs and remembers when the first batch started."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = 0
        self.started: float | None = None
        self.finished = asyncio.Event()

    def begin(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()

    def add(self, count: int) -> None:
        self.seen += count
        if self.seen >= self.expected:
            self.finished.set()

    def rate(self) -> float:
        assert self.started is not None
        return self.seen / (time.perf_counter() - self.started)


def _worker_settings(bootstrap: str, data_dir: Path) -> Settings:
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        redis_url=REDIS_URL,
        kafka_topic_partitions=3,
        data_dir=data_dir,
        stream_session_timeout_s=2.0,
    )


async def _run_faust(bootstrap: str, topic: str, count: int, prefix: str) -> float:
    from streams import app as stream_app

    settings = _worker_settings(bootstrap, Path(tempfile.mkdtemp(prefix=prefix)))
    meter = _Meter(count)
    app = stream_app.make_app(
        settings,
        _registry(_merchants()),
        keyspace=KeySpace(prefix=prefix),
        app_id=prefix,
        raw_topic=topic,
        on_batch=meter.begin,
        on_produced=meter.add,
    )
    await app.start()
    try:
        await asyncio.wait_for(meter.finished.wait(), timeout=600)
        return meter.rate()
    finally:
        await app.stop()


async def _run_plain(bootstrap: str, topic: str, count: int, prefix: str) -> float:
    """The same processor in a hand-written aiokafka loop, as the baseline."""
    import redis.asyncio as aioredis

    from streams.app import StoreTopics
    from streams.ledger import RedisLedger
    from streams.processor import OrderProcessor
    from streams.record import RawRecord

    registry = _registry(_merchants())
    redis = aioredis.Redis.from_url(REDIS_URL)
    keyspace = KeySpace(prefix=prefix)

    async def resolve(merchant_id: str) -> Store | None:
        return await registry.resolve_merchant(redis, keyspace, merchant_id)

    processor = OrderProcessor(resolve, RedisLedger(redis, keyspace))
    topics = StoreTopics(bootstrap, 3)
    consumer = make_consumer(bootstrap, prefix, session_timeout_ms=2000)
    consumer.subscribe([topic])
    producer = make_producer(bootstrap)
    await consumer.start()
    await producer.start()
    meter = _Meter(count)
    try:
        while not meter.finished.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            for records in batch.values():
                meter.begin()
                raw = [
                    RawRecord(
                        r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers)
                    )
                    for r in records
                ]
                outputs = await processor.process(raw)
                await topics.ensure(outputs)
                futures = [
                    await producer.send(o.topic, o.value, key=o.key) for o in outputs
                ]
                await asyncio.gather(*futures)
                await consumer.commit()
                meter.add(len(outputs))
        return meter.rate()
    finally:
        await producer.stop()
        await consumer.stop()
        await redis.aclose()


async def _cleanup(prefix: str) -> None:
    import redis.asyncio as aioredis

    redis = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
    finally:
        await redis.aclose()


def _child(kind: str, bootstrap: str, topic: str, count: int) -> None:
    """Entry of one measured worker process: prints its rate and peak memory."""
    prefix = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
    runner = _run_faust if kind == "faust" else _run_plain
    try:
        rate = asyncio.run(runner(bootstrap, topic, count, prefix))
    finally:
        asyncio.run(_cleanup(prefix))
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rate": rate, "rss_mib": rss_mib}))


def _measure_worker(kind: str, bootstrap: str, topic: str) -> dict[str, float]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_stream",
            kind,
            bootstrap,
            topic,
            str(E2E_ORDERS),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def _prepare(bootstrap: str, topics: list[str]) -> None:
    stores = [TopicSpec(store_topic(f"bench-{i}")) for i in range(MERCHANTS)]
    await ensure_topics(bootstrap, [TopicSpec(t) for t in topics] + stores, 3)
    for topic in topics:
        await _publish_raw(bootstrap, topic, E2E_ORDERS)


def run() -> Section:
    section = Section(
        "stream",
        "Stream: the pure transform and the Faust worker end to end",
        ".venv/bin/python -m bench stream",
    )
    transform, plain_json = measure_transform()
    section.add(
        "pure transform, five-item delivery order, per CPU-second",
        f"{transform:,.0f} orders/s",
        f"{transform / plain_json:.2f} x json.loads+dumps of the same order "
        f"({plain_json:,.0f}/s)",
    )
    with EmbeddedBroker("127.0.0.1", free_port(), None) as broker:
        bootstrap = f"127.0.0.1:{broker.port}"
        topics = {"faust": "bench-raw-faust", "plain": "bench-raw-plain"}
        asyncio.run(_prepare(bootstrap, list(topics.values())))
        plain = _measure_worker("plain", bootstrap, topics["plain"])
        faust = _measure_worker("faust", bootstrap, topics["faust"])
    section.add(
        f"plain aiokafka loop, {E2E_ORDERS:,} orders, {MERCHANTS} stores",
        f"{plain['rate']:,.0f} orders/s, peak RSS {plain['rss_mib']:.0f} MiB",
        "baseline",
    )
    section.add(
        f"Faust worker, {E2E_ORDERS:,} orders, {MERCHANTS} stores",
        f"{faust['rate']:,.0f} orders/s, peak RSS {faust['rss_mib']:.0f} MiB",
        f"{faust['rate'] / plain['rate']:.2f} x the plain loop",
    )
    verdicts = [
        ("transform >= 10,000/s", transform >= TARGET_TRANSFORM),
        ("worker >= 2,000/s", faust["rate"] >= TARGET_WORKER),
        ("worker >= 0.5 x plain loop", faust["rate"] >= TARGET_RATIO * plain["rate"]),
    ]
    section.notes += [
        "Targets: "
        + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in verdicts)
        + ".",
        "End to end: batches of up to 500 records, one Redis round trip (a pipeline "
        "of Lua calls) per batch, every output acknowledged by the broker "
        "(acks=all) before the batch's offsets are committed; 3 partitions.",
        f"Redis: {REDIS_URL.split('@')[-1]}; broker: embedded Tansu, memory storage.",
        f"Machine load (1-minute average) at the end of the run: "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, shared with other work.",
    ]
    return section


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
