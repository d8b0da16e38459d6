"""Delivery: store topics in, locker servers out, one lane per store.

The fetch loop hands each store's records to that store's `StoreLane`. A lane whose
locker fails opens its breaker, and its store's partitions are paused, so the
consumer stops fetching for that store while every other store keeps flowing; a
lane whose queue grows past ``queue_limit`` is paused the same way until it drains to
half. Offsets are committed every ``commit_interval_s``, per partition, up to the
record after the last one its lane settled (delivered, or set aside as a dead
letter), and again when partitions are revoked and at shutdown.

Two ways to run it: central (one consumer group subscribed to every store topic by
pattern; more processes share the stores) and in-store (one store's topic, that
store's group and credential). Both deliver the same events with the same
idempotency keys, so running both for one store sends duplicates the locker ignores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from consumers.alerts import AlertHook, log_alert
from consumers.locker_api import LockerApi
from consumers.status_feed import StatusFeed
from consumers.store_lane import (
    DeliveryOptions,
    LaneContext,
    Observer,
    Record,
    StoreLane,
)
from lockerlink.broker import ensure_topics, make_consumer, make_producer
from lockerlink.registry_reload import StoreLookup
from schemas.topics import DEAD_LETTER, STORE_TOPIC_PATTERN, TopicSpec, store_of_topic

log = logging.getLogger(__name__)

CENTRAL_GROUP = "lockerlink-deliver"


def in_store_group(store_id: str) -> str:
    """The consumer group of in-store delivery for ``store_id``."""
    return f"lockerlink-deliver-{store_id}"


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: DeliveryService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.service.release_partitions(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.service.assigned.set()
        log.info(
            "partitions assigned",
            extra={"partitions": sorted(f"{t.topic}/{t.partition}" for t in assigned)},
        )


class DeliveryService:
    """Consumes store topics and delivers every event to its store's locker."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        registry: StoreLookup,
        group_id: str = CENTRAL_GROUP,
        topics: Sequence[str] = (),
        pattern: str = STORE_TOPIC_PATTERN,
        options: DeliveryOptions | None = None,
        alert: AlertHook = log_alert,
        observer: Observer | None = None,
        status: StatusFeed | None = None,
        lag_interval_s: float = 5.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.registry = registry
        self.group_id = group_id
        self.topics = tuple(topics)
        self.pattern = pattern
        self.options = options or DeliveryOptions()
        self.alert = alert
        self.observer = observer
        self.status = status
        self.lag_interval_s = lag_interval_s
        self.lanes: dict[str, StoreLane] = {}
        self._paused: set[str] = set()
        self._committed: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._ctx: LaneContext | None = None
        self._crashed: BaseException | None = None
        self.ready = asyncio.Event()
        self.assigned = asyncio.Event()
        """Set once the group gave this process its partitions (maybe none)."""

    # -- what tests, benches and operators can see -----------------------------

    def held_stores(self) -> set[str]:
        """Stores whose locker is failing (breaker open)."""
        return {store for store, lane in self.lanes.items() if lane.held}

    def assigned_stores(self) -> set[str]:
        """Stores whose partitions this process holds right now."""
        if self._consumer is None:
            return set()
        return {store_of_topic(tp.topic) or "" for tp in self._consumer.assignment()}

    def paused_stores(self) -> set[str]:
        """Stores whose partitions are paused right now."""
        return set(self._paused)

    def delivered(self, store_id: str) -> int:
        lane = self.lanes.get(store_id)
        return lane.counts.delivered if lane else 0

    # -- running ----------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        """Deliver until ``stopping`` is set; commit what was settled, then return."""
        await ensure_topics(self.bootstrap_servers, [TopicSpec(DEAD_LETTER)], 1)
        producer = make_producer(self.bootstrap_servers)
        consumer = make_consumer(
            self.bootstrap_servers,
            self.group_id,
            metadata_max_age_ms=10_000,
            session_timeout_ms=int(self.options.session_timeout_s * 1000),
            heartbeat_interval_ms=max(100, int(self.options.session_timeout_s * 250)),
            max_partition_fetch_bytes=256 * 1024,
            # A broker may hold a fetch for its whole wait even when records arrive
            # (the embedded Tansu does), and that wait is every event's latency.
            fetch_max_wait_ms=100,
        )
        if self.topics:
            consumer.subscribe(topics=list(self.topics), listener=_Rebalance(self))
        else:
            consumer.subscribe(pattern=self.pattern, listener=_Rebalance(self))
        async with LockerApi.new_session() as session:
            await producer.start()
            try:
                await consumer.start()
                self._consumer = consumer
                self._ctx = LaneContext(
                    api=LockerApi(session),
                    producer=producer,
                    registry=self.registry,
                    alert=self.alert,
                    options=self.options,
                    on_change=self._on_lane_change,
                    observer=self.observer,
                    status=self.status,
                )
                await self._loop(consumer, stopping)
            finally:
                await self._shutdown(consumer)
                await producer.stop()

    async def _loop(self, consumer: AIOKafkaConsumer, stopping: asyncio.Event) -> None:
        committer = asyncio.create_task(self._commit_every_interval())
        helpers = [committer]
        if self.status is not None:
            helpers.append(asyncio.create_task(self.status.run()))
            helpers.append(asyncio.create_task(self._report_lag_every_interval()))
        self.ready.set()
        try:
            while not stopping.is_set():
                batch = await consumer.getmany(
                    timeout_ms=200, max_records=self.options.fetch_max_records
                )
                assigned = consumer.assignment()
                for tp, records in batch.items():
                    if tp in assigned and records:
                        self._dispatch(tp, records)
                if self._crashed is not None:
                    raise self._crashed
        finally:
            for helper in helpers:
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
            if self.status is not None:
                await self.status.drain()

    def _dispatch(self, tp: TopicPartition, records: list[Record]) -> None:
        store_id = store_of_topic(tp.topic)
        if store_id is None:
            log.warning("not a store topic; ignored", extra={"topic": tp.topic})
            return
        lane = self.lanes.get(store_id)
        if lane is None:
            assert self._ctx is not None
            lane = StoreLane(store_id, self._ctx)
            lane.start()
            assert lane.task is not None
            lane.task.add_done_callback(self._lane_done)
            self.lanes[store_id] = lane
        lane.push(records)
        self._on_lane_change(lane)

    def _lane_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._crashed = task.exception()

    def _on_lane_change(self, lane: StoreLane) -> None:
        """Pause a store that is held or too far behind; resume it when it is not."""
        consumer = self._consumer
        if consumer is None:
            return
        limit = self.options.queue_limit
        paused = lane.store_id in self._paused
        if not paused and (lane.held or len(lane.queue) >= limit):
            self._set_paused(consumer, lane.store_id, True)
        elif paused and not lane.held and len(lane.queue) <= limit // 2:
            self._set_paused(consumer, lane.store_id, False)

    def _set_paused(
        self, consumer: AIOKafkaConsumer, store_id: str, pause: bool
    ) -> None:
        partitions = [
            tp for tp in consumer.assignment() if store_of_topic(tp.topic) == store_id
        ]
        if pause:
            consumer.pause(*partitions)
            self._paused.add(store_id)
        else:
            consumer.resume(*partitions)
            self._paused.discard(store_id)
        log.debug(
            "store %s", "paused" if pause else "resumed", extra={"store": store_id}
        )

    # -- lag ---------------------------------------------------------------------

    async def _report_lag_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.lag_interval_s)
            try:
                await self.report_lag()
            except KafkaError as exc:
                log.warning("lag not measured: %s", exc)

    async def report_lag(self) -> dict[str, int]:
        """Events on each held store's partitions not yet settled; sent to status."""
        consumer = self._consumer
        if consumer is None:
            return {}
        assigned = sorted(consumer.assignment())
        if not assigned:
            return {}
        ends = await consumer.end_offsets(assigned)
        lag: dict[str, int] = {}
        for tp in assigned:
            store_id = store_of_topic(tp.topic)
            if store_id is None:
                continue
            lag[store_id] = lag.get(store_id, 0) + max(
                0, ends[tp] - await self._next_unsettled(tp)
            )
        if self.status is not None:
            for store_id, events in lag.items():
                self.status.lag(store_id, events)
        return lag

    async def _next_unsettled(self, tp: TopicPartition) -> int:
        """The first offset of ``tp`` its lane has not settled yet."""
        assert self._consumer is not None
        lane = self.lanes.get(store_of_topic(tp.topic) or "")
        if lane is not None:
            for record in lane.queue:
                if record.topic == tp.topic and record.partition == tp.partition:
                    return int(record.offset)
            if tp in lane.acked:
                return lane.acked[tp]
        committed = self._committed.get(tp)
        if committed is not None:
            return committed
        # Nothing fetched for it yet: everything from the fetch position is waiting.
        return int(await self._consumer.position(tp))

    # -- offsets --------------------------------------------------------------

    async def _commit_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.options.commit_interval_s)
            await self.commit_settled()

    async def commit_settled(self, only: set[TopicPartition] | None = None) -> None:
        """Commit, per partition, the offset after the last settled record."""
        consumer = self._consumer
        if consumer is None:
            return
        offsets = {
            tp: offset
            for lane in self.lanes.values()
            for tp, offset in lane.acked.items()
            if (only is None or tp in only) and self._committed.get(tp) != offset
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (KafkaError, AssertionError) as exc:
            # A rebalance took the partitions away; their next owner redelivers from
            # the last commit, and idempotency keys make that harmless.
            log.warning("commit failed: %s", exc, extra={"group": self.group_id})
            return
        self._committed.update(offsets)

    async def release_partitions(self, revoked: set[TopicPartition]) -> None:
        """Stop the lanes of revoked partitions and commit what they settled.

        aiokafka rebalances eagerly: every partition is revoked, and each new
        assignment starts from its committed offset, so dropping the lanes' queued
        records loses nothing.
        """
        stores = {store_of_topic(tp.topic) for tp in revoked}
        lanes = [self.lanes[s] for s in stores if s in self.lanes]
        for lane in lanes:
            await lane.stop()
        await self.commit_settled(only=revoked)
        for lane in lanes:
            del self.lanes[lane.store_id]
            self._paused.discard(lane.store_id)
        for tp in revoked:
            self._committed.pop(tp, None)

    async def _shutdown(self, consumer: AIOKafkaConsumer) -> None:
        for lane in list(self.lanes.values()):
            await lane.stop()
        await self.commit_settled()
        self._consumer = None
        await consumer.stop()
