"""The raw order record on `clover.orders.raw`: what the poller publishes.

The poller (and its webhook receiver) produces one record per Clover order version it
sees; the stream consumes them. This module is the whole contract between the two.

Key
    The Clover merchant id, UTF-8. Every version of one merchant's orders therefore
    lands on one partition, in the order the poller published them.

Value, one of two shapes (UTF-8 JSON)
    1. The Clover order object exactly as the REST API returned it, from
       ``GET /v3/merchants/{mId}/orders`` or ``.../orders/{orderId}`` with
       ``expand=lineItems,lineItems.modifications,orderType``. Nothing is renamed or
       cleaned: the stream's lenient model does that. When the poller looked up the
       customer separately (the order's own ``customers`` often hold only ids), it
       may put the full customer objects in ``customers.elements`` (``firstName``,
       ``lastName``, ``phoneNumbers.elements[].phoneNumber``); the rest stays as
       Clover sent it. The order's ``modifiedTime`` is its version.
    2. A delete marker, for an order Clover deleted (a webhook ``DELETE`` or an order
       gone from the listing)::

           {"deleted": true, "id": "<order id>", "merchantId": "<merchant id>",
            "deletedTime": <epoch ms, optional>}

       ``deletedTime`` is when the deletion happened if known (the webhook's ``ts``);
       without it the stream uses the record's fetch time as the cancellation's
       version.

Headers (values UTF-8)
    ``merchant_id``    the Clover merchant id (same as the key);
    ``fetched_at_ms``  when the poller fetched the order, epoch milliseconds;
    ``source``         ``poll`` or ``webhook``: which path found the change.

Use `order_record` and `delete_record` to build records, and `RawOrderHeaders` to read
the headers back; the helpers are the only place the header names are spelled.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

HEADER_MERCHANT_ID = "merchant_id"
HEADER_FETCHED_AT_MS = "fetched_at_ms"
HEADER_SOURCE = "source"

KafkaHeaders = tuple[tuple[str, bytes], ...]


class RawSource(StrEnum):
    """Which path of the poller found the order change."""

    POLL = "poll"
    WEBHOOK = "webhook"


class DeleteMarker(BaseModel):
    """The value published for an order Clover deleted."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    deleted: Literal[True] = True
    order_id: str = Field(alias="id", min_length=1)
    merchant_id: str = Field(alias="merchantId", min_length=1)
    deleted_at_ms: int | None = Field(None, alias="deletedTime", ge=0)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


class RawOrderHeaders(BaseModel):
    """The headers of a raw order record; any of them may be missing or odd."""

    model_config = ConfigDict(frozen=True)

    merchant_id: str | None = None
    fetched_at_ms: int | None = None
    source: RawSource | None = None

    @classmethod
    def from_kafka(cls, headers: Iterable[tuple[str, bytes | None]]) -> RawOrderHeaders:
        """Read the headers leniently: unknown or garbled values become None."""
        found: dict[str, str] = {}
        for name, raw in headers:
            if raw is None:
                continue
            found[name] = raw.decode("utf-8", errors="replace").strip()
        fetched = found.get(HEADER_FETCHED_AT_MS, "")
        source = found.get(HEADER_SOURCE, "")
        return cls(
            merchant_id=found.get(HEADER_MERCHANT_ID) or None,
            fetched_at_ms=int(fetched) if fetched.isdigit() else None,
            source=_source_or_none(source),
        )

    def to_kafka(self) -> KafkaHeaders:
        pairs: list[tuple[str, bytes]] = []
        if self.merchant_id is not None:
            pairs.append((HEADER_MERCHANT_ID, self.merchant_id.encode()))
        if self.fetched_at_ms is not None:
            pairs.append((HEADER_FETCHED_AT_MS, str(self.fetched_at_ms).encode()))
        if self.source is not None:
            pairs.append((HEADER_SOURCE, self.source.value.encode()))
        return tuple(pairs)


def _source_or_none(text: str) -> RawSource | None:
    try:
        return RawSource(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class RawOrderRecord:
    """One record for `clover.orders.raw`, ready for ``producer.send``."""

    key: bytes
    value: bytes
    headers: KafkaHeaders


def order_record(
    merchant_id: str,
    order: Mapping[str, Any] | bytes,
    *,
    fetched_at_ms: int,
    source: RawSource,
) -> RawOrderRecord:
    """The record of one fetched order version; bytes are published unchanged."""
    value = order if isinstance(order, bytes) else json.dumps(order).encode()
    headers = RawOrderHeaders(
        merchant_id=merchant_id, fetched_at_ms=fetched_at_ms, source=source
    )
    return RawOrderRecord(merchant_id.encode(), value, headers.to_kafka())


def delete_record(
    merchant_id: str,
    order_id: str,
    *,
    fetched_at_ms: int,
    source: RawSource,
    deleted_at_ms: int | None = None,
) -> RawOrderRecord:
    """The record saying Clover deleted an order."""
    marker = DeleteMarker(
        order_id=order_id, merchant_id=merchant_id, deleted_at_ms=deleted_at_ms
    )
    headers = RawOrderHeaders(
        merchant_id=merchant_id, fetched_at_ms=fetched_at_ms, source=source
    )
    return RawOrderRecord(merchant_id.encode(), marker.to_json(), headers.to_kafka())
