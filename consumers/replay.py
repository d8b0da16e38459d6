"""Replay after an outage or a fix: re-deliver a store's events, or re-run raw orders.

`replay_store` reads a store's topic between two times (offsets found by timestamp),
and posts each event to the store's locker in offset order with its idempotency key,
so a replay is safe to repeat: the locker answers "already held" for what it has.
It reads without a consumer group and commits nothing, so the delivery service is
not disturbed. Records stamped outside the window (producers may stamp out of
order) are left out.

`replay_raw` re-publishes one merchant's raw Clover records from the window back
onto the raw topic, unchanged but for a ``lockerlink-replay`` header, so the stream
transforms them again. Nothing is applied twice: the stream drops order versions it
has already seen and keeps the PIN an order already has, and every locker event it
produces again carries the same event id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka.errors import KafkaError
from pydantic import ValidationError

from consumers.backoff import Backoff
from consumers.locker_api import Answer, LockerApi, Verdict
from consumers.topic_window import read_windows, reader, windows_by_time
from lockerlink.broker import make_producer, start_client
from lockerlink.errors import BrokerError, ConfigError, LockerError
from lockerlink.registry import StoreRegistry
from schemas.locker_order import LockerOrderEvent
from schemas.topics import RAW_ORDERS, store_topic

log = logging.getLogger(__name__)

REPLAY_HEADER = "lockerlink-replay"
_RELATIVE = re.compile(r"^(?P<n>\d+)(?P<unit>[smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

Progress = Callable[[int], None]


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """ISO 8601 (naive means UTC), epoch milliseconds, or an age like ``90m``/``2h``."""
    text = text.strip()
    now = now or datetime.now(UTC)
    relative = _RELATIVE.fullmatch(text)
    if relative:
        amount = int(relative.group("n"))
        return now - timedelta(**{_UNITS[relative.group("unit")]: amount})
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"cannot read time {text!r}: use ISO 8601 (2026-12-03T12:00:00Z), "
            "epoch milliseconds, or an age such as 90m, 2h, 1d"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def epoch_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _in_window(timestamp_ms: int, since_ms: int, until_ms: int | None) -> bool:
    return timestamp_ms >= since_ms and (until_ms is None or timestamp_ms < until_ms)


@dataclass
class ReplaySummary:
    """What a replay found and did."""

    scope: str
    since: datetime
    until: datetime | None
    dry_run: bool
    matched: int = 0
    delivered: int = 0
    already_held: int = 0
    rejected: list[str] = field(default_factory=list)
    invalid: int = 0
    republished: int = 0

    def lines(self) -> list[str]:
        window = f"{self.since.isoformat()} .. {self.until or 'now'}"
        out = [f"{self.scope}, window {window}", f"matched      {self.matched}"]
        if self.dry_run:
            return [*out, "dry run: nothing sent"]
        if self.scope.startswith("raw"):
            return [*out, f"republished  {self.republished}"]
        out += [
            f"delivered    {self.delivered} (already held by the locker: "
            f"{self.already_held})",
            f"rejected     {len(self.rejected)} {' '.join(self.rejected)}".rstrip(),
            f"not events   {self.invalid}",
        ]
        return out


class StoreReplay:
    """Re-delivers a window of one store's topic to that store's locker."""

    def __init__(
        self,
        bootstrap_servers: str,
        registry: StoreRegistry,
        store_id: str,
        *,
        backoff: Backoff | None = None,
        max_attempts: int = 8,
        credential_lookup: Callable[[str], str | None] | None = None,
    ) -> None:
        store = registry.store(store_id)
        if store is None:
            raise ConfigError(f"store {store_id!r} is not in the store registry")
        if store.locker is None:
            raise ConfigError(f"store {store_id!r} has no locker endpoint to replay to")
        self.bootstrap_servers = bootstrap_servers
        self.store_id = store_id
        self.locker = store.locker
        self.backoff = backoff or Backoff(base_s=0.2, max_s=5.0)
        self.summary: ReplaySummary | None = None
        """The running replay's summary so far, also when it stopped early."""
        self.max_attempts = max_attempts
        self.credential: str | None = None
        if self.locker.credential_env:
            lookup = credential_lookup or os.environ.get
            self.credential = lookup(self.locker.credential_env)
            if not self.credential:
                raise ConfigError(
                    f"credential variable {self.locker.credential_env} is not set"
                )

    async def run(
        self,
        since: datetime,
        until: datetime | None,
        *,
        dry_run: bool,
        on_total: Progress | None = None,
        on_progress: Progress | None = None,
    ) -> ReplaySummary:
        summary = ReplaySummary(f"store {self.store_id}", since, until, dry_run)
        self.summary = summary
        since_ms, until_ms = epoch_ms(since) or 0, epoch_ms(until)
        consumer = reader(self.bootstrap_servers)
        await start_client(consumer, self.bootstrap_servers)
        try:
            topic = store_topic(self.store_id)
            windows = await windows_by_time(consumer, topic, since_ms)
            if on_total:
                on_total(sum(w.size for w in windows))
            async with LockerApi.new_session() as session:
                api = LockerApi(session)
                async for record in read_windows(consumer, windows):
                    if on_progress:
                        on_progress(1)
                    if _in_window(record.timestamp, since_ms, until_ms):
                        await self._one(api, record.value or b"", summary)
        finally:
            await consumer.stop()
        return summary

    async def _one(self, api: LockerApi, body: bytes, summary: ReplaySummary) -> None:
        summary.matched += 1
        try:
            event = LockerOrderEvent.model_validate_json(body)
        except ValidationError:
            summary.invalid += 1
            return
        if summary.dry_run:
            return
        answer = await self._post(api, event, body)
        if answer.verdict is Verdict.DELIVERED:
            summary.delivered += 1
            summary.already_held += answer.already_held
        else:
            summary.rejected.append(event.order_id)

    async def _post(
        self, api: LockerApi, event: LockerOrderEvent, body: bytes
    ) -> Answer:
        """Post until the locker settles the event; give up the replay if it cannot."""
        for attempt in range(1, self.max_attempts + 1):
            answer = await api.post_event(
                str(self.locker.url),
                event.event_id,
                body,
                timeout_s=self.locker.timeout_s,
                credential=self.credential,
            )
            if answer.verdict in (Verdict.DELIVERED, Verdict.REJECTED):
                return answer
            if answer.verdict is Verdict.REFUSES_US:
                break
            await asyncio.sleep(
                self.backoff.delay_s(attempt, at_least_s=answer.retry_after_s)
            )
        raise LockerError(
            f"replay stopped at order {event.order_id}: locker answered "
            f"{answer.status or 'nothing'}: {answer.detail}; events after it were not "
            "sent, so the store's order is kept; run the replay again later",
            store_id=self.store_id,
            status=answer.status,
        )


async def replay_raw(
    bootstrap_servers: str,
    merchant_id: str,
    since: datetime,
    until: datetime | None,
    *,
    dry_run: bool,
    replay_id: str,
    on_total: Progress | None = None,
    on_progress: Progress | None = None,
) -> ReplaySummary:
    """Re-publish a merchant's raw records stamped in the window onto the raw topic."""
    summary = ReplaySummary(
        f"raw orders of merchant {merchant_id}", since, until, dry_run
    )
    since_ms, until_ms = epoch_ms(since) or 0, epoch_ms(until)
    key = merchant_id.encode()
    consumer = reader(bootstrap_servers)
    await start_client(consumer, bootstrap_servers)
    producer = make_producer(bootstrap_servers)
    try:
        await start_client(producer, bootstrap_servers)
    except BrokerError:
        await consumer.stop()
        raise
    try:
        windows = await windows_by_time(consumer, RAW_ORDERS, since_ms)
        if on_total:
            on_total(sum(w.size for w in windows))
        async for record in read_windows(consumer, windows):
            if on_progress:
                on_progress(1)
            if record.key != key or not _in_window(
                record.timestamp, since_ms, until_ms
            ):
                continue
            summary.matched += 1
            if dry_run:
                continue
            headers = [*(record.headers or ()), (REPLAY_HEADER, replay_id.encode())]
            try:
                await producer.send_and_wait(
                    RAW_ORDERS, key=record.key, value=record.value, headers=headers
                )
            except KafkaError as exc:
                raise BrokerError(
                    f"replay stopped after {summary.republished} records: {exc}"
                ) from exc
            summary.republished += 1
    finally:
        await producer.stop()
        await consumer.stop()
    return summary
