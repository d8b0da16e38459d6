"""The Faust worker: `clover.orders.raw` in, store topics and dead letters out.

Batches of raw records go through the `OrderProcessor`; a batch's records are acked
(and so their offsets committed) only after every output of the batch was
acknowledged by the broker, so a crash replays the batch: the ledger then gives the
same events again and consumers drop them by event id. Redis or broker trouble
stops the line and retries the same batch; it never skips records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
import redis.asyncio as aioredis
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from prometheus_client import Counter

from lockerlink.alerts import Alerter, SmtpSender
from lockerlink.broker import ensure_topics
from lockerlink.dead_letter_alert import DeadLetterAlert
from lockerlink.errors import DependencyError
from lockerlink.keys import KeySpace
from lockerlink.logs import configure_logging
from lockerlink.registry import Store, StoreRegistry, load_registry
from lockerlink.sentry import init_sentry
from lockerlink.settings import Settings
from lockerlink.status import StatusBoard
from schemas.topics import CORE_TOPICS, RAW_ORDERS, TopicSpec, store_of_topic
from streams.dead_letter_report import DeadLetterReport
from streams.dead_letters import too_large
from streams.ledger import RedisLedger
from streams.ops import serve_ops
from streams.processor import OrderProcessor
from streams.record import Output, RawRecord

log = logging.getLogger(__name__)

APP_ID = "lockerlink-stream"
BATCH_WITHIN_S = 0.2
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
HEARTBEATS_PER_SESSION = 4
# What a send to a broker that is away raises (Faust wraps the client's errors).
_SEND_ERRORS = (KafkaError, ProducerSendError, OSError, asyncio.TimeoutError)

RECORDS = Counter(
    "lockerlink_stream_records_total",
    "Raw order records the stream settled (their outputs acknowledged).",
)


class StoreTopics:
    """Creates each store's topic the first time the stream writes to it."""

    def __init__(self, bootstrap_servers: str, partitions: int) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.partitions = partitions
        self._known: set[str] = set()

    async def ensure(self, outputs: Sequence[Output]) -> None:
        missing = {
            out.topic
            for out in outputs
            if out.topic not in self._known and store_of_topic(out.topic)
        }
        if not missing:
            return
        await ensure_topics(
            self.bootstrap_servers,
            [TopicSpec(name) for name in sorted(missing)],
            self.partitions,
        )
        self._known |= missing


def _headers(message: Any) -> tuple[tuple[str, bytes], ...]:
    raw = message.headers or ()
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple((str(k), v if isinstance(v, bytes) else b"") for k, v in items)


def raw_record(event: Any) -> RawRecord:
    """A Faust event as the processor's record."""
    message = event.message
    timestamp_s = message.timestamp
    return RawRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=_headers(message),
        timestamp_ms=int(timestamp_s * 1000) if timestamp_s else None,
    )


class StreamWorker:
    """Processes batches and produces their outputs, retrying until both succeed."""

    def __init__(
        self,
        settings: Settings,
        registry: StoreRegistry,
        keyspace: KeySpace | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.keyspace = keyspace or KeySpace(settings.redis_key_prefix)
        self.topics = StoreTopics(
            settings.kafka_bootstrap_servers, settings.kafka_topic_partitions
        )
        self._redis: aioredis.Redis | None = None
        self._processor: OrderProcessor | None = None
        self._report: DeadLetterReport | None = None

    @property
    def redis(self) -> aioredis.Redis:
        """The worker's Redis client, made on first use in the running loop."""
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(self.settings.redis_url)
        return self._redis

    async def store_of(self, merchant_id: str) -> Store | None:
        """The merchant's store, a run-time override first; raises
        `RedisUnavailable` when Redis cannot say."""
        return await self.registry.resolve_merchant(
            self.redis, self.keyspace, merchant_id
        )

    def processor(self) -> OrderProcessor:
        """The processor, with its Redis client made in the running loop."""
        if self._processor is None:
            redis = self.redis
            ledger = RedisLedger(
                redis,
                self.keyspace,
                pin_hold_s=self.settings.stream_pin_hold_s,
                order_ttl_s=self.settings.stream_order_ttl_s,
            )
            self._processor = OrderProcessor(self.store_of, ledger)
        return self._processor

    async def produced(self, outputs: Sequence[Output]) -> None:
        """The broker has ``outputs``: tell the board and the mail of dead letters."""
        if self._report is None:
            settings = self.settings
            alerter = Alerter(
                self.redis, self.keyspace, SmtpSender.from_settings(settings), "stream"
            )
            self._report = DeadLetterReport(
                StatusBoard(self.redis, self.keyspace),
                DeadLetterAlert(alerter, settings.alert_dead_letters_quiet_s),
                self.store_of,
            )
        await self._report.produced(outputs)

    async def close(self) -> None:
        if self._report is not None:
            await self._report.close()
            self._report = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
            self._processor = None

    async def outputs_of(self, records: Sequence[RawRecord]) -> list[Output]:
        """The batch's outputs, waiting out Redis trouble.

        Only the processing is tried again here: once the ledger has settled a
        batch, processing it again would call its older versions stale.
        """
        return await _patiently(
            "batch waits for a dependency",
            lambda: self.processor().process(records),
            len(records),
        )

    async def deliver(self, producer: Any, outputs: Sequence[Output]) -> list[Output]:
        """Send ``outputs`` in order until the broker acknowledged every one; what
        was sent in the end.

        After a failure the outputs from the first unacknowledged one on are sent
        again, in order, after a growing pause. Outputs after the failed one may
        already be on the broker, so they can arrive twice and, across a store's
        orders, out of send order; consumers drop repeats by event id and never
        apply an older order version over a newer one. An output the broker
        refuses as too large is replaced by a dead letter without the record's
        bytes (sending it again would fail forever and stall the partition). The
        caller commits the batch's offsets only after this returns.
        """
        outputs = list(outputs)
        delay_s = RETRY_FIRST_S
        sent = 0
        while sent < len(outputs):
            try:
                await self.topics.ensure(outputs[sent:])
                acknowledged, failure = await _send_in_order(producer, outputs[sent:])
            except (*_SEND_ERRORS, DependencyError) as exc:
                acknowledged, failure = 0, exc
            sent += acknowledged
            if failure is None:
                continue
            if _too_large(failure):
                log.error(
                    "output of %d bytes refused as too large; dead-lettering it "
                    "without its record",
                    len(outputs[sent].value),
                    extra={"topic": outputs[sent].topic},
                )
                outputs[sent] = too_large(outputs[sent], failure)
                continue
            log.warning(
                "send failed, %d of %d outputs acknowledged; sending the rest again: "
                "%s: %s",
                sent,
                len(outputs),
                type(failure).__name__,
                failure,
            )
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RETRY_MAX_S)
        return outputs


def _too_large(exc: BaseException) -> bool:
    """Whether a send failed because the record is over the size limit (Faust
    wraps the client's error, so its cause is looked at too)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MessageSizeTooLargeError):
            return True
        seen = seen.__cause__
    return False


async def _send_in_order(
    producer: Any, outputs: Sequence[Output]
) -> tuple[int, BaseException | None]:
    """Send all and wait for all: how many in a row were acknowledged, and why not
    the next one (None when all were)."""
    futures: list[Awaitable[Any]] = []
    failure: BaseException | None = None
    try:
        for out in outputs:
            futures.append(
                await producer.send(out.topic, out.key, out.value, None, None, None)
            )
    except _SEND_ERRORS as exc:
        failure = exc
    results = await asyncio.gather(*futures, return_exceptions=True)
    for index, result in enumerate(results):
        if isinstance(result, BaseException):
            return index, result
    return len(results), failure


async def _patiently(
    what: str, attempt: Callable[[], Awaitable[list[Output]]], records: int
) -> list[Output]:
    delay_s = RETRY_FIRST_S
    while True:
        try:
            return await attempt()
        except DependencyError as exc:
            log.warning(
                "%s: %s",
                what,
                exc.message,
                extra={"topic": RAW_ORDERS, "records": records},
            )
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RETRY_MAX_S)


def make_app(
    settings: Settings,
    registry: StoreRegistry | None = None,
    *,
    keyspace: KeySpace | None = None,
    app_id: str = APP_ID,
    raw_topic: str = RAW_ORDERS,
    on_batch: Callable[[], None] | None = None,
    on_produced: Callable[[int], None] | None = None,
    ops_port: int | None = None,
) -> faust.App:
    """The Faust app of the stream, configured for a broker without transactions.

    ``on_batch`` and ``on_produced`` let a caller watch the work: called when a batch
    arrives, and with the number of outputs once the broker acknowledged them.
    ``ops_port``: serve /healthz, /readyz and /metrics there (None: not).
    """
    servers = [
        f"kafka://{s.strip()}" for s in settings.kafka_bootstrap_servers.split(",")
    ]
    web_port = settings.stream_web_port
    session_s = settings.stream_session_timeout_s
    datadir = settings.data_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=servers,
        processing_guarantee="at_least_once",
        producer_enable_idempotence=False,
        producer_acks=-1,
        producer_request_timeout=settings.stream_send_timeout_s,
        web_enabled=web_port is not None,
        web_port=web_port or 6066,
        web_host="127.0.0.1",
        topic_partitions=settings.kafka_topic_partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        datadir=str(datadir),
        autodiscover=False,
        broker_commit_interval=1.0,
        broker_session_timeout=session_s,
        broker_rebalance_timeout=session_s,
        broker_heartbeat_interval=session_s / HEARTBEATS_PER_SESSION,
    )
    worker = StreamWorker(
        settings,
        registry
        if registry is not None
        else load_registry(settings.store_registry_path),
        keyspace,
    )
    raw = app.topic(
        raw_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def transform_orders(stream: Any) -> None:
        async for events in stream.take_events(
            settings.stream_batch_max, within=BATCH_WITHIN_S
        ):
            if on_batch is not None:
                on_batch()
            records = [raw_record(event) for event in events]
            outputs = await worker.outputs_of(records)
            outputs = await worker.deliver(app.producer, outputs)
            RECORDS.inc(len(records))
            await worker.produced(outputs)
            if on_produced is not None:
                on_produced(len(outputs))

    app.agent(raw, name="transform-orders")(transform_orders)

    async def _close(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await worker.close()

    app.on_before_shutdown.connect(_close)
    if ops_port is not None:
        serve_ops(app, settings.ops_host, ops_port, lambda: worker.redis)

    return app


async def prepare_topics(settings: Settings) -> None:
    """The core topics must exist before the worker subscribes."""
    await ensure_topics(
        settings.kafka_bootstrap_servers, CORE_TOPICS, settings.kafka_topic_partitions
    )


def run_stream(settings: Settings) -> None:
    """Run the stream worker until SIGINT or SIGTERM."""
    init_sentry(settings, component="stream")
    asyncio.run(prepare_topics(settings))
    configure_logging(settings.log_level, settings.log_format)
    app = make_app(settings, ops_port=settings.stream_ops_port)
    # Faust would replace the root logger's handlers with its own format; ours stay.
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.execute_from_commandline()
