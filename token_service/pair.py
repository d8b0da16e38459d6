"""A Clover token pair and the access token handed out of the vault."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from lockerlink.errors import CloverError
from schemas.token_rotation import token_fingerprint


@dataclass(frozen=True)
class TokenPair:
    """An access token and the single-use refresh token that renews it.

    Neither token appears in ``repr``: a pair may end up in a traceback or a log.
    """

    access_token: str = field(repr=False)
    access_expires_at_ms: int
    refresh_token: str = field(repr=False)
    refresh_expires_at_ms: int

    # Cached: a pair is read far more often than it changes (a hash per token read).
    @cached_property
    def access_fingerprint(self) -> str:
        return token_fingerprint(self.access_token)

    @cached_property
    def refresh_fingerprint(self) -> str:
        return token_fingerprint(self.refresh_token)

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "access_token": self.access_token,
                "access_expires_at_ms": self.access_expires_at_ms,
                "refresh_token": self.refresh_token,
                "refresh_expires_at_ms": self.refresh_expires_at_ms,
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> TokenPair:
        data = json.loads(raw)
        return cls(
            access_token=str(data["access_token"]),
            access_expires_at_ms=int(data["access_expires_at_ms"]),
            refresh_token=str(data["refresh_token"]),
            refresh_expires_at_ms=int(data["refresh_expires_at_ms"]),
        )

    @classmethod
    def from_clover(cls, payload: Any, merchant_id: str | None = None) -> TokenPair:
        """Read Clover's token response (expirations in Unix seconds), defensively."""
        if not isinstance(payload, Mapping):
            raise _malformed("token response is not a JSON object", merchant_id)
        access = payload.get("access_token")
        refresh = payload.get("refresh_token")
        if not isinstance(access, str) or not access:
            raise _malformed("token response has no access_token", merchant_id)
        if not isinstance(refresh, str) or not refresh:
            raise _malformed("token response has no refresh_token", merchant_id)
        return cls(
            access_token=access,
            access_expires_at_ms=_seconds_to_ms(
                payload.get("access_token_expiration"), merchant_id
            ),
            refresh_token=refresh,
            refresh_expires_at_ms=_seconds_to_ms(
                payload.get("refresh_token_expiration"), merchant_id
            ),
        )


def _seconds_to_ms(value: object, merchant_id: str | None) -> int:
    # Clover's examples show numbers as strings now and then.
    if isinstance(value, bool):
        raise _malformed("token expiration is not a number", merchant_id)
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        # OverflowError: an integer too large for a float (JSON allows any length).
        raise _malformed("token expiration is not a number", merchant_id) from None
    if not 0 < seconds < 1e11:
        raise _malformed("token expiration is out of range", merchant_id)
    return int(seconds * 1000)


def _malformed(message: str, merchant_id: str | None) -> CloverError:
    # A malformed answer may be a proxy's error page: worth another try later.
    return CloverError(message, merchant_id=merchant_id, retriable=True)


@dataclass(frozen=True)
class AccessToken:
    """What the vault hands out: the access token, its expiry and its fingerprint."""

    token: str = field(repr=False)
    expires_at_ms: int
    fingerprint: str
    version: int
    merchant_id: str

    def remaining_s(self, now_ms: int) -> float:
        return (self.expires_at_ms - now_ms) / 1000
