"""One store's lane: its events delivered one at a time, in offset order, never skipped.

A lane owns a queue of records fetched for its store and one task that takes the
head record, delivers it (retrying the same record until the locker acknowledges it,
rejects it for good, or the process stops) and only then moves to the next. The
offset after the last settled record of each partition is what may be committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from consumers.alerts import Alert, AlertHook, AlertKind, raise_alert
from consumers.backoff import Backoff
from consumers.breaker import BreakerState, CircuitBreaker
from consumers.dead_letters import DeadLetterReason, envelope, publish
from consumers.locker_api import Answer, LockerApi, Verdict
from consumers.status_feed import StatusFeed
from lockerlink.errors import BrokerError
from lockerlink.registry_reload import StoreLookup
from schemas.locker_order import LockerOrderEvent

log = logging.getLogger(__name__)

# aiokafka ships no type hints, so its record type is Any to mypy.
Record: TypeAlias = ConsumerRecord
Observer = Callable[[str, Record, Answer | None], None]
"""Called after each settled record: store id, the record, the locker's answer."""


@dataclass(frozen=True)
class DeliveryOptions:
    """Knobs of delivery; defaults suit production, tests shrink the waits."""

    commit_interval_s: float = 1.0
    queue_limit: int = 500
    failures_to_open: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    fetch_max_records: int = 2000
    session_timeout_s: float = 10.0


@dataclass
class LaneContext:
    """What every lane shares: the HTTP client, the broker, the registry, hooks."""

    api: LockerApi
    producer: AIOKafkaProducer
    registry: StoreLookup
    alert: AlertHook
    options: DeliveryOptions
    on_change: Callable[[StoreLane], None]
    observer: Observer | None = None
    status: StatusFeed | None = None


@dataclass
class LaneCounts:
    delivered: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    attempts_failed: int = 0


class StoreLane:
    """Delivers one store's records strictly in the order they were fetched."""

    def __init__(self, store_id: str, ctx: LaneContext) -> None:
        self.store_id = store_id
        self.ctx = ctx
        self.queue: deque[Record] = deque()
        self.acked: dict[TopicPartition, int] = {}
        self.breaker = CircuitBreaker(
            failures_to_open=ctx.options.failures_to_open, backoff=ctx.options.backoff
        )
        self.counts = LaneCounts()
        self._wakeup = asyncio.Event()
        self._held_alerted = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"lane-{self.store_id}")

    async def stop(self) -> None:
        """Cancel the lane; a request in flight is dropped (its key makes that safe)."""
        if self.task is None:
            return
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def push(self, records: list[Record]) -> None:
        self.queue.extend(records)
        self._wakeup.set()

    @property
    def held(self) -> bool:
        """True while the locker is failing and only probes reach it."""
        return self.breaker.is_open

    async def _run(self) -> None:
        while True:
            while not self.queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            record = self.queue[0]
            answer = await self._settle(record)
            self.queue.popleft()
            self.acked[TopicPartition(record.topic, record.partition)] = (
                record.offset + 1
            )
            if self.ctx.observer is not None:
                self.ctx.observer(self.store_id, record, answer)
            self.ctx.on_change(self)

    async def _settle(self, record: Record) -> Answer | None:
        """Deliver, dead-letter or skip ``record``; return only when it is settled."""
        try:
            event = LockerOrderEvent.model_validate_json(record.value or b"")
        except ValidationError as exc:
            detail = f"not a locker order event: {exc.error_count()} problem(s): " + (
                "; ".join(
                    f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                    for e in exc.errors()[:5]
                )
            )
            await self._dead_letter(record, DeadLetterReason.INVALID_EVENT, detail, exc)
            return None
        if event.store_id != self.store_id:
            detail = f"event of store {event.store_id!r} on this store's topic"
            await self._dead_letter(record, DeadLetterReason.WRONG_STORE, detail, None)
            return None
        return await self._deliver(record, event)

    async def _deliver(self, record: Record, event: LockerOrderEvent) -> Answer | None:
        while True:
            self._probe_if_open()
            answer = await self._attempt(record, event)
            if answer is None:
                self.counts.skipped += 1
                return None
            if answer.verdict is Verdict.DELIVERED:
                self._recovered()
                self.counts.delivered += 1
                if self.ctx.status is not None:
                    self.ctx.status.delivered(self.store_id, event.order_version)
                return answer
            if answer.verdict is Verdict.REJECTED:
                self._recovered()
                await self._reject(record, event, answer)
                return answer
            await self._failed(event, answer)

    async def _attempt(self, record: Record, event: LockerOrderEvent) -> Answer | None:
        """One try; None when the store has no HTTP locker (its lockers read Kafka)."""
        store = self.ctx.registry.store(self.store_id)
        if store is None:
            return Answer(Verdict.REFUSES_US, None, "store is not in the registry")
        if store.locker is None:
            return None
        credential = None
        if store.locker.credential_env:
            credential = os.environ.get(store.locker.credential_env)
            if not credential:
                detail = f"credential variable {store.locker.credential_env} is not set"
                return Answer(Verdict.REFUSES_US, None, detail)
        return await self.ctx.api.post_event(
            str(store.locker.url),
            event.event_id,
            record.value or b"",
            timeout_s=store.locker.timeout_s,
            credential=credential,
        )

    def _probe_if_open(self) -> None:
        if self.breaker.begin_probe():
            self._report_breaker()

    def _report_breaker(self) -> None:
        if self.ctx.status is not None:
            self.ctx.status.breaker(self.store_id, self.breaker.state.value)

    def _recovered(self) -> None:
        if self.breaker.record_success():
            self._held_alerted = False
            log.info(
                "locker answers again; store resumes", extra={"store": self.store_id}
            )
            self._report_breaker()
            self.ctx.on_change(self)

    async def _failed(self, event: LockerOrderEvent, answer: Answer) -> None:
        self.counts.attempts_failed += 1
        probe_failed = self.breaker.state is BreakerState.HALF_OPEN
        opened = self.breaker.record_failure()
        if answer.verdict is Verdict.REFUSES_US and not self.breaker.is_open:
            opened = self.breaker.trip()
        if opened:
            log.warning(
                "locker failing; store paused: %s",
                answer.summary,
                extra={"store": self.store_id, "status": answer.status},
            )
            self._report_breaker()
            self.ctx.on_change(self)
        elif probe_failed:
            self._report_breaker()
        if answer.verdict is Verdict.REFUSES_US and not self._held_alerted:
            self._held_alerted = True
            detail = f"deliveries held: locker refuses us: {answer.summary}"
            await raise_alert(
                self.ctx.alert,
                Alert(
                    AlertKind.STORE_HELD, self.store_id, detail, status=answer.status
                ),
            )
        await asyncio.sleep(self.breaker.wait_s(at_least_s=answer.retry_after_s))

    async def _reject(
        self, record: Record, event: LockerOrderEvent, answer: Answer
    ) -> None:
        detail = f"locker answered HTTP {answer.status}: {answer.detail}"
        await self._dead_letter(
            record, DeadLetterReason.LOCKER_REJECTED, detail, None, event, answer
        )

    async def _dead_letter(
        self,
        record: Record,
        reason: str,
        detail: str,
        error: Exception | None,
        event: LockerOrderEvent | None = None,
        answer: Answer | None = None,
    ) -> None:
        """Set ``record`` aside (retrying until the broker has it) and alert.

        The dead letter keeps the locker's words; the alert (log, Sentry, mail)
        only its status, since a locker's error may echo the order back.
        """
        letter = envelope(
            record,
            reason=reason,
            detail=detail,
            error_class=type(error).__name__ if error else "LockerRejection",
            store_id=self.store_id,
            merchant_id=event.merchant_id if event else None,
        )
        attempt = 0
        while True:
            try:
                await publish(self.ctx.producer, letter)
                break
            except BrokerError as exc:
                attempt += 1
                log.warning(
                    "cannot dead-letter yet: %s",
                    exc.message,
                    extra={"store": self.store_id},
                )
                await asyncio.sleep(self.ctx.options.backoff.delay_s(attempt))
        self.counts.dead_lettered += 1
        if self.ctx.status is not None:
            self.ctx.status.dead_letter(self.store_id)
        alert = Alert(
            AlertKind.DEAD_LETTER,
            self.store_id,
            f"record set aside ({reason}) at {record.topic}/{record.partition}"
            f"@{record.offset}: "
            + (f"locker answered {answer.summary}" if answer else detail),
            order_id=event.order_id if event else None,
            event_id=event.event_id if event else None,
            status=answer.status if answer else None,
        )
        await raise_alert(self.ctx.alert, alert)
