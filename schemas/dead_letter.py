"""The dead-letter envelope: why a record was set aside, and the record itself."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field


class SourceRecord(Protocol):
    """Where a record sits and what it holds: a Kafka consumer record or alike."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class DeadLetter(BaseModel):
    """A record that could not be processed, kept whole so it can be re-driven."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(description="Short machine-readable reason, e.g. 'no_store'.")
    detail: str = Field(description="Human-readable explanation, without secrets.")
    error_class: str
    component: str
    source_topic: str
    source_partition: int
    source_offset: int
    original_key_b64: str | None
    original_value_b64: str
    # Header values as UTF-8 text (bytes that are not become U+FFFD); Kafka allows a
    # header without a value, kept as null.
    original_headers: tuple[tuple[str, str | None], ...] = ()
    store_id: str | None = None
    merchant_id: str | None = None
    original_omitted: bool = Field(
        False,
        description="True when the record was too large to carry here: "
        "original_value_b64 is empty and the record is still at source_topic, "
        "source_partition, source_offset for as long as that topic keeps it.",
    )
    at: datetime

    @classmethod
    def of_record(
        cls,
        record: SourceRecord,
        headers: Iterable[tuple[str, bytes | None]] | None,
        *,
        reason: str,
        detail: str,
        error_class: str,
        component: str,
        store_id: str | None = None,
        merchant_id: str | None = None,
        omit_original: bool = False,
    ) -> DeadLetter:
        """The dead letter for ``record``: why, where it sat, and it byte for byte
        (``omit_original``: its key and headers only, for a record too large)."""
        return cls(
            reason=reason,
            detail=detail,
            error_class=error_class,
            component=component,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            original_key_b64=None if record.key is None else cls.encode(record.key),
            original_value_b64="" if omit_original else cls.encode(record.value or b""),
            original_headers=tuple(
                (name, None if value is None else value.decode("utf-8", "replace"))
                for name, value in headers or ()
            ),
            store_id=store_id,
            merchant_id=merchant_id,
            original_omitted=omit_original,
            at=datetime.now(UTC),
        )

    @staticmethod
    def encode(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    def without_original(self) -> DeadLetter:
        """This letter without the record's bytes, for one too large to send."""
        return self.model_copy(
            update={
                "original_value_b64": "",
                "original_omitted": True,
                "detail": f"{self.detail} (record of "
                f"{len(self.original_value())} bytes too large to keep "
                f"here; it stays at {self.source_topic}/{self.source_partition}"
                f"@{self.source_offset})",
            }
        )

    def original_value(self) -> bytes:
        return base64.b64decode(self.original_value_b64)

    def original_key(self) -> bytes | None:
        if self.original_key_b64 is None:
            return None
        return base64.b64decode(self.original_key_b64)
