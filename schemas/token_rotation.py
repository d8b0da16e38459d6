"""Token rotation events on `clover.token-rotations`: fingerprints, never tokens."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class RotationReason(StrEnum):
    PROACTIVE = "proactive"
    REJECTED = "rejected"
    FORCED = "forced"
    CONNECT = "connect"
    RECOVERY = "recovery"
    STATE_CHANGE = "state_change"


class MerchantState(StrEnum):
    CONNECTED = "connected"
    REFRESH_FAILING = "refresh_failing"
    REAUTH_REQUIRED = "reauth_required"


class TokenRotationEvent(BaseModel):
    """A merchant's access token changed, or its state did."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    merchant_id: str
    store_ids: tuple[str, ...]
    state: MerchantState
    token_version: int = Field(ge=0)
    fingerprint: str | None = Field(
        None, description="Short hash of the access token; never the token."
    )
    access_token_expires_at: datetime | None = None
    reason: RotationReason
    at: datetime


def token_fingerprint(token: str) -> str:
    """A short, non-reversible name for a token, safe to log and publish."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]
