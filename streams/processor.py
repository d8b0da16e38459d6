"""One batch of raw order records into locker order events and dead letters.

The processor is what both the Faust worker and `lockerlink transform` run: it finds
each record's merchant and store, applies the pure transform, settles event types and
PINs in the ledger (one Redis round trip per batch), and returns what to produce, in
the order of the input. It never raises on a record's content: anything a record
cannot become goes out as a dead letter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from prometheus_client import Counter

from lockerlink.errors import DependencyError, InputError
from lockerlink.registry import Store
from schemas.clover import CloverOrder
from schemas.raw_order import DeleteMarker, RawOrderHeaders
from schemas.topics import store_topic
from streams.dead_letters import dead_letter
from streams.ledger import OrderLedger, Removal, Request, Settlement, Upsert, Verdict
from streams.record import Output, RawRecord, merchant_of
from streams.transform import Reason, draft_order, finish, read_record

log = logging.getLogger(__name__)

StoreResolver = Callable[[str], Awaitable[Store | None]]

EVENTS = Counter(
    "lockerlink_stream_events_total",
    "Locker order events the stream produced.",
    ["event_type"],
)
DROPPED = Counter(
    "lockerlink_stream_dropped_total",
    "Raw records that needed no event (stale versions, unknown cancellations).",
    ["why"],
)
COERCIONS = Counter(
    "lockerlink_stream_coerced_fields_total",
    "Odd Clover fields the lenient model converted or dropped.",
)


@dataclass(frozen=True)
class _Pending:
    """A record whose request waits for the ledger."""

    index: int
    record: RawRecord
    merchant_id: str
    store: Store
    request: Request


def _removal_version(
    marker: DeleteMarker, headers: RawOrderHeaders, record: RawRecord
) -> int:
    """When the deletion happened, as well as the record can tell."""
    for candidate in (marker.deleted_at_ms, headers.fetched_at_ms, record.timestamp_ms):
        if candidate is not None:
            return candidate
    return int(time.time() * 1000)


class OrderProcessor:
    """Turns batches of raw records into outputs; stateful only through the ledger."""

    def __init__(
        self,
        resolve_store: StoreResolver,
        ledger: OrderLedger,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.resolve_store = resolve_store
        self.ledger = ledger
        self.clock_ms = clock_ms

    async def process(self, records: Sequence[RawRecord]) -> list[Output]:
        """The outputs of ``records``, in input order (dead letters in place)."""
        outputs: dict[int, Output] = {}
        pending: list[_Pending] = []
        stores: dict[str, Store | None] = {}
        for index, record in enumerate(records):
            try:
                found = await self._prepare(index, record, stores)
            except InputError as exc:
                outputs[index] = self._reject(
                    record, exc.reason, exc, merchant_id=merchant_of(record)
                )
            except DependencyError:
                raise
            except Exception as exc:  # a bug must not stop the line either
                log.exception("transform failed", extra=_where(record))
                outputs[index] = self._reject(
                    record,
                    Reason.INTERNAL_ERROR,
                    exc,
                    merchant_id=merchant_of(record),
                )
            else:
                if isinstance(found, Output):
                    outputs[index] = found
                elif found is not None:
                    pending.append(found)
        settlements = await self.ledger.settle(
            [p.request for p in pending], self.clock_ms()
        )
        for item, settlement in zip(pending, settlements, strict=True):
            out = self._output(item, settlement)
            if out is not None:
                outputs[item.index] = out
        return [outputs[i] for i in sorted(outputs)]

    async def _store(
        self, merchant_id: str, stores: dict[str, Store | None]
    ) -> Store | None:
        if merchant_id not in stores:
            stores[merchant_id] = await self.resolve_store(merchant_id)
        return stores[merchant_id]

    async def _prepare(
        self, index: int, record: RawRecord, stores: dict[str, Store | None]
    ) -> _Pending | Output | None:
        parsed = read_record(record.value)
        merchant_id = merchant_of(record)
        if merchant_id is None:
            merchant_id = (
                parsed.owner_id()
                if isinstance(parsed, CloverOrder)
                else parsed.merchant_id
            )
        if merchant_id is None:
            raise InputError("record names no merchant", reason=Reason.NO_MERCHANT)
        store = await self._store(merchant_id, stores)
        if store is None:
            return self._reject(
                record,
                Reason.NO_STORE,
                InputError(
                    f"merchant {merchant_id} belongs to no store",
                    reason=Reason.NO_STORE,
                ),
                merchant_id=merchant_id,
            )
        if isinstance(parsed, DeleteMarker):
            headers = RawOrderHeaders.from_kafka(record.headers)
            version = _removal_version(parsed, headers, record)
            removal = Removal(store.store_id, parsed.order_id, version)
            return _Pending(index, record, merchant_id, store, removal)
        if parsed.coercions:
            COERCIONS.inc(len(parsed.coercions))
            log.debug("coerced fields: %s", "; ".join(parsed.coercions))
        drafted = draft_order(
            parsed, store=store, merchant_id=merchant_id, tz=store.zone()
        )
        return _Pending(index, record, merchant_id, store, Upsert(drafted))

    def _output(self, item: _Pending, settlement: Settlement) -> Output | None:
        if settlement.verdict is Verdict.EXHAUSTED:
            return self._reject(
                item.record,
                Reason.PIN_SPACE_EXHAUSTED,
                InputError(
                    f"every candidate PIN of the order is held in store "
                    f"{item.store.store_id}",
                    reason=Reason.PIN_SPACE_EXHAUSTED,
                ),
                merchant_id=item.merchant_id,
                store_id=item.store.store_id,
            )
        if settlement.verdict is not Verdict.EMIT:
            DROPPED.labels(why=settlement.verdict.value).inc()
            log.info(
                "record needs no event: %s",
                settlement.verdict.value,
                extra={**_where(item.record), "store_id": item.store.store_id},
            )
            return None
        assert settlement.event_type and settlement.pin and settlement.policy
        if isinstance(item.request, Removal):
            assert settlement.draft is not None
            draft = replace(
                settlement.draft, order_version=item.request.version, cancelled=True
            )
        else:
            draft = settlement.draft or item.request.drafted.draft
        try:
            event = finish(
                draft,
                event_type=settlement.event_type,
                pin=settlement.pin,
                policy=settlement.policy,
            )
        except InputError as exc:
            return self._reject(
                item.record, exc.reason, exc, merchant_id=item.merchant_id
            )
        EVENTS.labels(event_type=event.event_type.value).inc()
        return Output(
            store_topic(event.store_id),
            event.store_id.encode(),
            event.model_dump_json().encode(),
            item.record,
        )

    @staticmethod
    def _reject(
        record: RawRecord,
        reason: str,
        exc: BaseException,
        *,
        merchant_id: str | None = None,
        store_id: str | None = None,
    ) -> Output:
        return dead_letter(
            record,
            reason=reason,
            detail=str(exc)[:500],
            error_class=type(exc).__name__,
            merchant_id=merchant_id,
            store_id=store_id,
        )


def _where(record: RawRecord) -> dict[str, object]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
    }
