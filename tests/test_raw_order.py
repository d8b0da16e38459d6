"""The raw order record contract between the poller and the stream."""

from __future__ import annotations

import json

from schemas.raw_order import (
    DeleteMarker,
    RawOrderHeaders,
    RawSource,
    delete_record,
    order_record,
)


def test_order_record_is_keyed_by_merchant_and_carries_headers() -> None:
    record = order_record(
        "MID1", {"id": "ORD1"}, fetched_at_ms=1700, source=RawSource.WEBHOOK
    )
    assert record.key == b"MID1"
    assert json.loads(record.value) == {"id": "ORD1"}
    headers = RawOrderHeaders.from_kafka(record.headers)
    assert headers == RawOrderHeaders(
        merchant_id="MID1", fetched_at_ms=1700, source=RawSource.WEBHOOK
    )


def test_order_record_publishes_api_bytes_unchanged() -> None:
    body = b'{"id": "ORD1", "total": "1250" }'
    record = order_record("MID1", body, fetched_at_ms=1, source=RawSource.POLL)
    assert record.value == body


def test_delete_record_round_trips_through_the_marker_model() -> None:
    record = delete_record(
        "MID1", "ORD1", fetched_at_ms=5, source=RawSource.POLL, deleted_at_ms=4
    )
    assert json.loads(record.value) == {
        "deleted": True,
        "id": "ORD1",
        "merchantId": "MID1",
        "deletedTime": 4,
    }
    marker = DeleteMarker.model_validate_json(record.value)
    assert marker.order_id == "ORD1"
    assert marker.merchant_id == "MID1"
    assert marker.deleted_at_ms == 4


def test_garbled_headers_read_as_missing_instead_of_failing() -> None:
    headers = RawOrderHeaders.from_kafka(
        [("fetched_at_ms", b"soon"), ("source", b"fax"), ("merchant_id", None)]
    )
    assert headers == RawOrderHeaders()
