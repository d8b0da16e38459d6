"""A client for locker servers that read their own store topic instead of taking HTTP.

Use it inside the store's locker server::

    client = KafkaLockerClient(
        bootstrap_servers="kafka:9092",
        store_id="downtown",
        on_event=put_order_in_locker,          # async (LockerOrderEvent) -> None
        on_token_rotation=fetch_fresh_token,   # async (TokenRotationEvent) -> None
    )
    await client.run(stopping)                 # until the asyncio.Event is set

What it promises, the same as central delivery:

- Order: the store's events reach ``on_event`` one at a time, in the order they were
  produced; the next event waits until the callback for this one has returned.
- Retries: if ``on_event`` raises, the same event is offered again after a jittered,
  growing wait; it is never skipped. Raise `EventRejected` instead to refuse an
  event for good: it goes to the dead-letter topic and the next event comes.
- Idempotency: after a crash, or when the group moved the store to a peer (a
  callback slower than ``max_callback_s``, or a failover peer joining), events
  whose callback finished but whose offset was not committed yet come again. Each
  carries its ``event_id``; store it with the order and ignore an id you already
  hold, and never let an older ``order_version`` overwrite a newer one.
- Offsets: committed after each callback returns (one consumer group per store,
  ``lockerlink-locker-<store>``; run one client per store, or several for failover).
- Bad records on the topic (not a locker order event, or another store's) go to the
  dead-letter topic and never reach the callback.

Clover tokens: the client also follows ``clover.token-rotations``. When a merchant of
this store gets a new access token (or changes state, e.g. must re-authorize),
``on_token_rotation`` is called with the event, which holds a fingerprint and never
the token: fetch the fresh token from the token service then. At start the callback
also gets the newest event for each of the store's merchants (the topic is
compacted), so a locker that was off learns the current state. A rotation callback
that raises is logged and not called again for that event: retry the fetch yourself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from consumers.backoff import Backoff
from consumers.dead_letters import DeadLetterReason, envelope, publish
from consumers.store_lane import Record
from consumers.topic_window import partitions_of
from lockerlink.broker import make_consumer, make_producer
from lockerlink.errors import BrokerError
from schemas.locker_order import LockerOrderEvent
from schemas.token_rotation import TokenRotationEvent
from schemas.topics import TOKEN_ROTATIONS, store_topic

log = logging.getLogger(__name__)

EventHandler = Callable[[LockerOrderEvent], Awaitable[None]]
RotationHandler = Callable[[TokenRotationEvent], Awaitable[None]]


class EventRejected(Exception):
    """Raised by ``on_event`` to refuse an event for good (it is dead-lettered)."""


def locker_group(store_id: str) -> str:
    """The consumer group of the Kafka-speaking lockers of ``store_id``."""
    return f"lockerlink-locker-{store_id}"


class KafkaLockerClient:
    """Hands a store's locker order events to a callback, in order, at least once."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        store_id: str,
        on_event: EventHandler,
        on_token_rotation: RotationHandler | None = None,
        group_id: str | None = None,
        backoff: Backoff | None = None,
        session_timeout_s: float = 10.0,
        max_callback_s: float = 300.0,
    ) -> None:
        """``max_callback_s``: how long one batch's callbacks may take before the
        group gives this client's partitions to a peer (Kafka's
        max.poll.interval.ms); the client then rejoins and resumes from its last
        commit, so an event whose commit was refused comes again."""
        self.bootstrap_servers = bootstrap_servers
        self.store_id = store_id
        self.topic = store_topic(store_id)
        self.on_event = on_event
        self.on_token_rotation = on_token_rotation
        self.group_id = group_id or locker_group(store_id)
        self.backoff = backoff or Backoff()
        self.session_timeout_s = session_timeout_s
        self.max_callback_s = max_callback_s

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set."""
        tasks = [asyncio.create_task(self._orders(stopping))]
        if self.on_token_rotation is not None:
            tasks.append(asyncio.create_task(self._rotations(stopping)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- the store's orders ------------------------------------------------------

    async def _orders(self, stopping: asyncio.Event) -> None:
        consumer = make_consumer(
            self.bootstrap_servers,
            self.group_id,
            session_timeout_ms=int(self.session_timeout_s * 1000),
            heartbeat_interval_ms=max(100, int(self.session_timeout_s * 250)),
            max_poll_interval_ms=int(self.max_callback_s * 1000),
        )
        consumer.subscribe([self.topic])
        producer = make_producer(self.bootstrap_servers)
        await producer.start()
        try:
            await consumer.start()
            try:
                while not stopping.is_set():
                    batch = await consumer.getmany(timeout_ms=200, max_records=100)
                    for tp, records in batch.items():
                        await self._settle_in_order(consumer, producer, tp, records)
            finally:
                await consumer.stop()
        finally:
            await producer.stop()

    async def _settle_in_order(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        tp: TopicPartition,
        records: list[Record],
    ) -> None:
        """Settle and commit one record at a time; stop at a partition this client
        no longer owns (a rebalance: its new owner resumes from the last commit)."""
        for record in records:
            if tp not in consumer.assignment():
                return
            await self._settle(producer, record)
            try:
                await consumer.commit({tp: record.offset + 1})
            except KafkaError as exc:
                # The group rebalanced while the callback ran (a peer joined, or
                # the callback kept failing past max_poll_interval_ms).
                log.warning(
                    "commit refused; the partition is read again from its last "
                    "commit: %s",
                    type(exc).__name__,
                    extra={"store": self.store_id, "offset": record.offset},
                )
                if tp in consumer.assignment():
                    consumer.seek(tp, record.offset + 1)
                return

    async def _settle(self, producer: AIOKafkaProducer, record: Record) -> None:
        try:
            event = LockerOrderEvent.model_validate_json(record.value or b"")
        except ValidationError as exc:
            detail = f"not a locker order event: {exc.error_count()} problem(s)"
            await self._dead_letter(
                producer, record, DeadLetterReason.INVALID_EVENT, detail
            )
            return
        if event.store_id != self.store_id:
            detail = f"event of store {event.store_id!r} on this store's topic"
            await self._dead_letter(
                producer, record, DeadLetterReason.WRONG_STORE, detail
            )
            return
        attempt = 0
        while True:
            try:
                await self.on_event(event)
                return
            except EventRejected as exc:
                detail = f"locker refused the event: {exc}"
                await self._dead_letter(
                    producer, record, DeadLetterReason.LOCKER_REJECTED, detail
                )
                return
            except Exception:
                attempt += 1
                log.warning(
                    "locker callback failed; the same event comes again",
                    exc_info=True,
                    extra={"store": self.store_id, "order": event.order_id},
                )
                await asyncio.sleep(self.backoff.delay_s(attempt))

    async def _dead_letter(
        self, producer: AIOKafkaProducer, record: Record, reason: str, detail: str
    ) -> None:
        letter = envelope(
            record,
            reason=reason,
            detail=detail,
            error_class="KafkaLockerClient",
            store_id=self.store_id,
        )
        attempt = 0
        while True:
            try:
                await publish(producer, letter)
                return
            except BrokerError:
                attempt += 1
                await asyncio.sleep(self.backoff.delay_s(attempt))

    # -- token rotations ---------------------------------------------------------

    async def _rotations(self, stopping: asyncio.Event) -> None:
        """Follow the rotation topic; broker trouble here never stops the orders."""
        attempt = 0
        while not stopping.is_set():
            try:
                await self._follow_rotations(stopping)
                return
            except (KafkaError, BrokerError, OSError) as exc:
                attempt += 1
                log.warning(
                    "token rotations unreadable for now: %s",
                    type(exc).__name__,
                    extra={"store": self.store_id},
                )
                await asyncio.sleep(self.backoff.delay_s(attempt))

    async def _follow_rotations(self, stopping: asyncio.Event) -> None:
        consumer = make_consumer(self.bootstrap_servers, None)
        await consumer.start()
        try:
            partitions = await self._rotation_partitions(consumer, stopping)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            while not stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for record in records:
                        await self._rotation(record)
        finally:
            await consumer.stop()

    async def _rotation_partitions(
        self, consumer: AIOKafkaConsumer, stopping: asyncio.Event
    ) -> list[TopicPartition]:
        """The rotation topic's partitions, waiting for the topic if it is not there."""
        while True:
            try:
                return await partitions_of(consumer, TOKEN_ROTATIONS)
            except BrokerError:
                if stopping.is_set():
                    return []
                await asyncio.sleep(1.0)

    async def _rotation(self, record: Record) -> None:
        if record.value is None:
            return  # a tombstone: the merchant's entry was removed
        try:
            event = TokenRotationEvent.model_validate_json(record.value)
        except ValidationError:
            log.warning(
                "unreadable token rotation record skipped",
                extra={"partition": record.partition, "offset": record.offset},
            )
            return
        if self.store_id not in event.store_ids or self.on_token_rotation is None:
            return
        try:
            await self.on_token_rotation(event)
        except Exception:
            log.exception(
                "token rotation callback failed",
                extra={"store": self.store_id, "merchant": event.merchant_id},
            )
