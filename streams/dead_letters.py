"""Dead letters of the stream: the envelope, the count, and the Sentry report.

A record that cannot become a locker order is kept whole on `lockers.dead-letter`
with why, so it can be re-driven after a fix. Sentry hears the reason and where the
record sits, never its payload: an order holds names and phone numbers.
"""

from __future__ import annotations

import logging

import sentry_sdk
from prometheus_client import Counter

from schemas.dead_letter import DeadLetter
from schemas.topics import DEAD_LETTER, store_of_topic
from streams.record import Output, RawRecord, merchant_of
from streams.transform import Reason

log = logging.getLogger(__name__)

COMPONENT = "stream"

DEAD_LETTERS = Counter(
    "lockerlink_stream_dead_letters_total",
    "Raw order records the stream set aside on the dead-letter topic.",
    ["reason"],
)


def dead_letter(
    record: RawRecord,
    *,
    reason: str,
    detail: str,
    error_class: str,
    merchant_id: str | None = None,
    store_id: str | None = None,
    omit_original: bool = False,
) -> Output:
    """The dead-letter record for ``record``; counts it and tells Sentry."""
    envelope = DeadLetter.of_record(
        record,
        record.headers,
        reason=reason,
        detail=detail,
        error_class=error_class,
        component=COMPONENT,
        store_id=store_id,
        merchant_id=merchant_id,
        omit_original=omit_original,
    )
    DEAD_LETTERS.labels(reason=reason).inc()
    _report(envelope)
    log.warning(
        "record dead-lettered: %s",
        reason,
        extra={
            "reason": reason,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "merchant_id": merchant_id,
            "store_id": store_id,
        },
    )
    key = (merchant_id or "").encode() or None
    return Output(DEAD_LETTER, key, envelope.model_dump_json().encode(), record)


def too_large(out: Output, error: BaseException) -> Output:
    """The dead letter to send instead of ``out``, which the broker refused as too
    large: where the raw record sits and why, without the record's bytes.

    A locker event that big would be refused on every try, and so would a dead
    letter carrying a raw record near the limit (base64 adds a third).
    """
    assert out.source is not None, "every stream output names its raw record"
    record = out.source
    if out.topic == DEAD_LETTER:
        first = DeadLetter.model_validate_json(out.value)
        what = f"dead letter ({first.reason}: {first.detail[:200]})"
        merchant_id, store_id = first.merchant_id, first.store_id
    else:
        what = f"event for {out.topic}"
        merchant_id = merchant_of(record)
        store_id = store_of_topic(out.topic)
    return dead_letter(
        record,
        reason=Reason.TOO_LARGE,
        detail=f"{what} of {len(out.value)} bytes is over the broker's record "
        f"limit ({type(error).__name__}); the raw record stays at "
        f"{record.topic}/{record.partition}@{record.offset}",
        error_class=type(error).__name__,
        merchant_id=merchant_id,
        store_id=store_id,
        omit_original=True,
    )


def _report(envelope: DeadLetter) -> None:
    """Tell Sentry (when configured) the reason and position, not the payload."""
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("component", COMPONENT)
        scope.set_tag("reason", envelope.reason)
        scope.set_tag("error_class", envelope.error_class)
        scope.set_tag("source_topic", envelope.source_topic)
        scope.set_tag("merchant", envelope.merchant_id or "")
        scope.set_tag("store", envelope.store_id or "")
        scope.set_extra("source_partition", envelope.source_partition)
        scope.set_extra("source_offset", envelope.source_offset)
        sentry_sdk.capture_message(
            f"stream dead letter: {envelope.reason}", level="warning"
        )
