"""One merchant's work: poll its changed orders, fetch webhook-named ones, publish.

Every path ends in `_publish_new`: keep only versions not published yet, publish
them in ``modifiedTime`` order, wait for Kafka's acknowledgement, then remember
them. One merchant's publishing is serialized, so a poll and a webhook fetch never
publish the same version twice.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lockerlink.errors import CloverError
from producers.budget import Priority
from producers.clover_client import CloverClient, CloverNotFound
from producers.cursor import CursorStore
from producers.customers import CustomerCache
from producers.inbox import WebhookInbox
from producers.journal import PublishJournal, TopicReader, confirmed
from producers.ledger import PublishedLedger, delete_version
from producers.publisher import RawPublisher
from schemas.raw_order import RawOrderRecord, RawSource, delete_record, order_record

log = logging.getLogger(__name__)


SWEEP_BATCH = 100

CURSOR_STEP_MS = 10_000
"""An unchanged merchant's cursor is written at most this often (it only trails)."""

Clock = Callable[[], float]
"""Unix seconds; the wall clock outside tests."""


@dataclass(frozen=True)
class PollWindow:
    """How far back a poll reads and how far its cursor may move."""

    lookback_ms: int = 30_000
    safety_lag_ms: int = 2_000
    backfill_ms: int = 86_400_000
    page_size: int = 100


@dataclass
class PollStats:
    """What one merchant's pollers did, for logs, tests and benchmarks."""

    polls: int = 0
    pages: int = 0
    fetched: int = 0
    published: int = 0
    deleted: int = 0
    skipped_odd: int = 0
    webhook_fetches: int = 0


@dataclass(frozen=True)
class _Version:
    order_id: str
    modified_ms: int
    order: dict[str, Any] = field(compare=False)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _next_page(page: Sequence[Any], since_ms: int, skip: int) -> tuple[int, int]:
    """The (modifiedTime bound, offset) of the page after ``page``."""
    times = [
        _as_int(o.get("modifiedTime")) if isinstance(o, dict) else None for o in page
    ]
    known = [t for t in times if t is not None]
    if len(known) != len(times) or known != sorted(known) or known[0] < since_ms:
        return since_ms, skip + len(page)
    last = known[-1]
    ties = len(known) - bisect.bisect_left(known, last)
    if last == since_ms:
        return since_ms, skip + ties
    return last, ties


class MerchantPoller:
    """Polls and fetches orders of the merchants this process holds leases for."""

    def __init__(
        self,
        client: CloverClient,
        publisher: RawPublisher,
        ledger: PublishedLedger,
        cursors: CursorStore,
        inbox: WebhookInbox,
        customers: CustomerCache | None,
        window: PollWindow,
        owner: str,
        journal: PublishJournal,
        reader: TopicReader,
        clock: Clock = time.time,
    ) -> None:
        self._client = client
        self._publisher = publisher
        self._ledger = ledger
        self._cursors = cursors
        self._inbox = inbox
        self._customers = customers
        self._window = window
        self._owner = owner
        self._journal = journal
        self._reader = reader
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._cursor_ms: dict[str, int] = {}
        self.stats = PollStats()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _lock(self, merchant_id: str) -> asyncio.Lock:
        return self._locks.setdefault(merchant_id, asyncio.Lock())

    def forget(self, merchant_id: str) -> None:
        """Drop per-merchant state once the merchant's lease is gone."""
        self._locks.pop(merchant_id, None)
        self._cursor_ms.pop(merchant_id, None)

    async def recover(self, merchant_id: str) -> None:
        """Settle a publish the previous holder of this merchant left unfinished."""
        entry = await self._journal.read(merchant_id)
        if entry is None:
            return
        found = await self._reader.versions_since(merchant_id, entry.at_ms)
        present = confirmed(entry, found)
        await self._ledger.remember(merchant_id, present)
        await self._journal.end(merchant_id)
        log.warning(
            "unfinished publish settled",
            extra={
                "merchant_id": merchant_id,
                "noted": len(entry.versions),
                "found_in_topic": len(present),
            },
        )

    async def poll(self, merchant_id: str) -> int:
        """Publish every order version changed since the cursor; returns how many."""
        started_ms = self._now_ms()
        cursor_ms = await self._cursor(merchant_id)
        if cursor_ms is None:
            since_ms = started_ms - self._window.backfill_ms
        else:
            since_ms = cursor_ms - self._window.lookback_ms
        orders = await self._read_all_pages(merchant_id, max(0, since_ms))
        published = await self._publish_orders(
            merchant_id, orders, RawSource.POLL, started_ms
        )
        # Only now is everything the poll read acknowledged by Kafka.
        target_ms = started_ms - self._window.safety_lag_ms
        if published or cursor_ms is None or target_ms - cursor_ms >= CURSOR_STEP_MS:
            await self._cursors.advance(merchant_id, target_ms, self._owner)
            self._cursor_ms[merchant_id] = max(target_ms, cursor_ms or target_ms)
        self.stats.polls += 1
        return published

    async def _cursor(self, merchant_id: str) -> int | None:
        """The cursor; read once per lease, since only the lease holder moves it."""
        if merchant_id in self._cursor_ms:
            return self._cursor_ms[merchant_id]
        cursor_ms = await self._cursors.get(merchant_id)
        if cursor_ms is not None:
            self._cursor_ms[merchant_id] = cursor_ms
        return cursor_ms

    async def _read_all_pages(self, merchant_id: str, since_ms: int) -> list[Any]:
        """Every order modified since ``since_ms``, paging by modifiedTime.

        Listings come sorted by (modifiedTime, id), so each next page starts at the
        last modifiedTime seen, skipping the orders already read at exactly that
        time. Plain offsets could skip an order when another one changes between
        pages and moves to the end; keyset pages cannot. Should a page ever arrive
        unsorted, paging falls back to plain offsets.
        """
        orders: list[Any] = []
        skip = 0
        limit = self._window.page_size
        while True:
            page = await self._client.list_orders(
                merchant_id, modified_since_ms=since_ms, offset=skip, limit=limit
            )
            self.stats.pages += 1
            orders.extend(page)
            if len(page) < limit:
                return orders
            since_ms, skip = _next_page(page, since_ms, skip)

    async def sweep_deletes(self, merchant_id: str) -> int:
        """Publish delete records for orders that left Clover's listing.

        Polls by ``modifiedTime`` never see a deletion, and a DELETE webhook can be
        lost. So the orders published within the backfill window are looked up by
        id, a hundred per request; each one missing is confirmed with a single
        read (404) before its delete record goes out.
        """
        since_ms = self._now_ms() - self._window.backfill_ms
        known = await self._ledger.live_since(merchant_id, since_ms)
        missing: list[str] = []
        for start in range(0, len(known), SWEEP_BATCH):
            chunk = known[start : start + SWEEP_BATCH]
            listed = await self._client.orders_with_ids(merchant_id, chunk)
            present = {o.get("id") for o in listed if isinstance(o, dict)}
            missing += [order_id for order_id in chunk if order_id not in present]
        gone = [o for o in missing if await self._is_gone(merchant_id, o)]
        if not gone:
            return 0
        return await self._publish_orders(
            merchant_id, [], RawSource.POLL, self._now_ms(), deleted=gone
        )

    async def _is_gone(self, merchant_id: str, order_id: str) -> bool:
        try:
            await self._client.get_order(merchant_id, order_id, Priority.POLL)
        except CloverNotFound:
            return True
        return False

    async def fetch_pending(self, merchant_id: str) -> int:
        """Fetch the orders webhooks named and publish them; returns how many."""
        taken = await self._inbox.take(merchant_id)
        if not taken:
            return 0
        self.stats.webhook_fetches += len(taken)
        fetched_ms = self._now_ms()
        found: list[Any] = []
        gone: list[str] = []
        handled: dict[str, float] = {}
        failure: CloverError | None = None
        for order_id, score in taken.items():
            try:
                found.append(await self._client.get_order(merchant_id, order_id))
            except CloverNotFound:
                gone.append(order_id)
            except CloverError as exc:
                failure = exc
                continue
            handled[order_id] = score
        count = await self._publish_orders(
            merchant_id, found, RawSource.WEBHOOK, fetched_ms, deleted=gone
        )
        await self._inbox.done(merchant_id, handled)
        if failure is not None:
            raise failure
        return count

    async def _publish_orders(
        self,
        merchant_id: str,
        orders: Sequence[Any],
        source: RawSource,
        fetched_ms: int,
        deleted: Sequence[str] = (),
    ) -> int:
        versions = self._versions(merchant_id, orders)
        self.stats.fetched += len(orders)
        async with self._lock(merchant_id):
            candidates = [(v.order_id, float(v.modified_ms)) for v in versions]
            candidates += [(oid, delete_version(fetched_ms)) for oid in deleted]
            fresh = await self._ledger.unpublished(merchant_id, candidates)
            new_versions = [v for v, new in zip(versions, fresh, strict=False) if new]
            new_deletes = [
                oid
                for oid, new in zip(deleted, fresh[len(versions) :], strict=True)
                if new
            ]
            records = await self._records(
                merchant_id, new_versions, new_deletes, source, fetched_ms
            )
            done = [(v.order_id, float(v.modified_ms)) for v in new_versions] + [
                (oid, delete_version(fetched_ms)) for oid in new_deletes
            ]
            if records:
                await self._journal.begin(merchant_id, self._now_ms(), done)
                await self._publisher.publish(records)
                await self._ledger.remember(merchant_id, done)
                await self._journal.end(merchant_id)
        self.stats.published += len(new_versions)
        self.stats.deleted += len(new_deletes)
        if records:
            log.info(
                "orders published",
                extra={
                    "merchant_id": merchant_id,
                    "source": source.value,
                    "orders": len(new_versions),
                    "deletes": len(new_deletes),
                },
            )
        return len(records)

    def _versions(self, merchant_id: str, orders: Sequence[Any]) -> list[_Version]:
        """Usable orders, newest version of each, oldest change first."""
        newest: dict[str, _Version] = {}
        for order in orders:
            version = self._version_of(merchant_id, order)
            if version is None:
                continue
            seen = newest.get(version.order_id)
            if seen is None or version.modified_ms > seen.modified_ms:
                newest[version.order_id] = version
        return sorted(newest.values(), key=lambda v: (v.modified_ms, v.order_id))

    def _version_of(self, merchant_id: str, order: Any) -> _Version | None:
        order_id = order.get("id") if isinstance(order, dict) else None
        if not isinstance(order_id, str) or not order_id.strip():
            self.stats.skipped_odd += 1
            log.warning(
                "Clover sent an order without an id; skipped",
                extra={"merchant_id": merchant_id},
            )
            return None
        modified_ms = _as_int(order.get("modifiedTime"))
        if modified_ms is None:
            # Still published once; a later, well-formed version follows it.
            log.warning(
                "Clover sent an order without a usable modifiedTime",
                extra={"merchant_id": merchant_id, "order_id": order_id},
            )
            modified_ms = 0
        return _Version(order_id.strip(), modified_ms, order)

    async def _records(
        self,
        merchant_id: str,
        versions: Sequence[_Version],
        deleted: Sequence[str],
        source: RawSource,
        fetched_ms: int,
    ) -> list[RawOrderRecord]:
        records = []
        for version in versions:
            order = version.order
            if self._customers is not None:
                order = await self._customers.with_names(merchant_id, order)
            records.append(
                order_record(
                    merchant_id, order, fetched_at_ms=fetched_ms, source=source
                )
            )
        for order_id in deleted:
            records.append(
                delete_record(
                    merchant_id, order_id, fetched_at_ms=fetched_ms, source=source
                )
            )
        return records
