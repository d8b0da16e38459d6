"""Setting records aside on `lockers.dead-letter`, whole, so they can be re-driven."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.structs import ConsumerRecord

from lockerlink.errors import BrokerError
from schemas.dead_letter import DeadLetter
from schemas.topics import DEAD_LETTER

log = logging.getLogger(__name__)

COMPONENT = "consumers.delivery"


class DeadLetterReason:
    """The reasons delivery sets a record aside for."""

    INVALID_EVENT = "invalid_event"
    WRONG_STORE = "wrong_store"
    LOCKER_REJECTED = "locker_rejected"


def envelope(
    record: ConsumerRecord,
    *,
    reason: str,
    detail: str,
    error_class: str,
    store_id: str | None,
    merchant_id: str | None = None,
) -> DeadLetter:
    """The dead letter for ``record``: the reason, and the record byte for byte."""
    return DeadLetter.of_record(
        record,
        record.headers,
        reason=reason,
        detail=detail,
        error_class=error_class,
        component=COMPONENT,
        store_id=store_id,
        merchant_id=merchant_id,
    )


async def publish(producer: AIOKafkaProducer, letter: DeadLetter) -> None:
    """Put ``letter`` on the dead-letter topic and wait until the broker has it.

    A letter the broker refuses as too large (base64 makes a record near the limit
    a third larger) goes without the record's bytes: sending it again would fail
    for ever and hold the store.
    """
    key = (letter.store_id or letter.merchant_id or "").encode() or None
    try:
        try:
            await producer.send_and_wait(
                DEAD_LETTER, key=key, value=letter.model_dump_json().encode()
            )
        except MessageSizeTooLargeError:
            if letter.original_omitted:
                raise
            log.error(
                "dead letter too large; sending it without the record",
                extra={"store": letter.store_id, "offset": letter.source_offset},
            )
            letter = letter.without_original()
            await producer.send_and_wait(
                DEAD_LETTER, key=key, value=letter.model_dump_json().encode()
            )
    except KafkaError as exc:
        raise BrokerError(f"cannot write to {DEAD_LETTER}: {exc}") from exc
    log.warning(
        "record dead-lettered: %s",
        letter.reason,
        extra={
            "store": letter.store_id,
            "topic": letter.source_topic,
            "partition": letter.source_partition,
            "offset": letter.source_offset,
        },
    )
