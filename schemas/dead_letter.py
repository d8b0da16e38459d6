"""The dead-letter envelope: why a record was set aside, and the record itself."""

from __future__ import annotations

import base64
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


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
    original_headers: tuple[tuple[str, str], ...] = ()
    store_id: str | None = None
    merchant_id: str | None = None
    at: datetime

    @staticmethod
    def encode(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    def original_value(self) -> bytes:
        return base64.b64decode(self.original_value_b64)

    def original_key(self) -> bytes | None:
        if self.original_key_b64 is None:
            return None
        return base64.b64decode(self.original_key_b64)
