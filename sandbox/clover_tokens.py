"""Clover's OAuth v2 token rules: codes, access tokens, single-use refresh tokens.

Every method runs without awaiting, so on one event loop each check-and-rotate is
atomic: of two refreshes presenting the same token, exactly one wins.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

from sandbox.clover_config import CloverConfig
from sandbox.clover_rejection import Rejection


class TokenPair(TypedDict):
    """A token response exactly as Clover shapes it; expirations in Unix seconds."""

    access_token: str
    access_token_expiration: int
    refresh_token: str
    refresh_token_expiration: int


@dataclass
class _Code:
    merchant_id: str
    client_id: str
    code_challenge: str | None
    expires_at_s: float
    used: bool = False


@dataclass
class _Grant:
    """One authorization's chain of refresh tokens; only ``current`` refreshes."""

    merchant_id: str
    current: str
    current_expires_at_s: float
    previous: str | None = None
    previous_usable_until_s: float = 0.0
    active: bool = True


@dataclass
class _Access:
    merchant_id: str
    expires_at_s: float


def pkce_challenge(code_verifier: str) -> str:
    """The S256 code challenge of a verifier: unpadded base64url of its SHA-256."""
    digest = hashlib.sha256(code_verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _unauthorized(message: str, outcome: str, merchant_id: str | None) -> Rejection:
    return Rejection(message, status=401, outcome=outcome, merchant_id=merchant_id)


class TokenAuthority:
    """Issues, rotates, recovers and revokes tokens for the sandbox's merchants."""

    def __init__(self, config: CloverConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._installed: set[str] = set(config.merchant_ids)
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _Access] = {}
        self._grants: dict[str, list[_Grant]] = {}
        self._grant_of: dict[str, _Grant] = {}
        self._spent: set[str] = set()
        self.reject_all_access = False

    # -- merchants ----------------------------------------------------------------
    def install(self, merchant_id: str) -> None:
        """Let a merchant authorize the app (again)."""
        self._installed.add(merchant_id)

    def uninstall(self, merchant_id: str) -> None:
        """Uninstall the app for a merchant: every token of theirs stops working."""
        self._installed.discard(merchant_id)
        for grant in self._grants.pop(merchant_id, []):
            grant.active = False
        for token, access in list(self._access.items()):
            if access.merchant_id == merchant_id:
                del self._access[token]

    def is_installed(self, merchant_id: str) -> bool:
        return merchant_id in self._installed

    # -- authorization codes -------------------------------------------------------
    def new_code(
        self, merchant_id: str, client_id: str, code_challenge: str | None
    ) -> str:
        """A one-time code for the browser callback, valid for the code lifetime."""
        self._check_client(client_id, merchant_id)
        code = secrets.token_urlsafe(24)
        expires_at_s = self._clock() + self._config.code_lifetime_s
        self._codes[code] = _Code(merchant_id, client_id, code_challenge, expires_at_s)
        return code

    def exchange_code(
        self,
        client_id: str,
        code: str,
        client_secret: str | None,
        code_verifier: str | None,
    ) -> tuple[str, TokenPair]:
        """Trade a code for a first token pair; returns the merchant id with it."""
        found = self._codes.get(code)
        if found is None or found.client_id != client_id:
            raise _unauthorized("Invalid authorization code", "unknown", None)
        merchant = found.merchant_id
        if found.used:
            raise _unauthorized("Authorization code already used", "reused", merchant)
        if self._clock() >= found.expires_at_s:
            raise _unauthorized("Authorization code expired", "expired", merchant)
        self._check_code_proof(found, client_secret, code_verifier)
        found.used = True
        return merchant, self.connect(merchant)

    def _check_code_proof(
        self, code: _Code, client_secret: str | None, code_verifier: str | None
    ) -> None:
        merchant = code.merchant_id
        if code.code_challenge is not None:
            if code_verifier is None or not hmac.compare_digest(
                pkce_challenge(code_verifier), code.code_challenge
            ):
                raise _unauthorized("Invalid code_verifier", "bad_proof", merchant)
            return
        if client_secret is None or not hmac.compare_digest(
            client_secret.encode(), self._config.app_secret.encode()
        ):
            raise _unauthorized("Invalid client_secret", "bad_proof", merchant)

    # -- issuance and rotation -----------------------------------------------------
    def connect(self, merchant_id: str) -> TokenPair:
        """Start a new grant for a merchant, as a successful code exchange does."""
        self._check_client(self._config.app_id, merchant_id)
        refresh, refresh_expires_at_s = self._new_refresh()
        grant = _Grant(merchant_id, refresh, refresh_expires_at_s)
        self._grant_of[refresh] = grant
        grants = self._grants.setdefault(merchant_id, [])
        grants.append(grant)
        # Over the cap, the oldest grants lose their refresh tokens, as at Clover.
        while len(grants) > self._config.refresh_tokens_per_merchant:
            grants.pop(0).active = False
        return self._pair(grant)

    def refresh(self, client_id: str, refresh_token: str) -> tuple[str, TokenPair]:
        """Spend a refresh token for a new pair; a spent token never works again."""
        grant = self._live_grant(client_id, refresh_token)
        if grant.current != refresh_token:
            raise _unauthorized(
                "Invalid refresh token",
                self._dead_reason(refresh_token),
                grant.merchant_id,
            )
        self._spent.add(refresh_token)
        grant.previous = refresh_token
        grant.previous_usable_until_s = self._clock() + self._config.recovery_window_s
        self._rotate(grant)
        return grant.merchant_id, self._pair(grant)

    def recover(self, client_id: str, refresh_token: str) -> tuple[str, TokenPair]:
        """Use the token before the current one, once, while the current is unused."""
        grant = self._live_grant(client_id, refresh_token)
        merchant = grant.merchant_id
        if grant.previous != refresh_token:
            raise _unauthorized("Invalid recovery token", "not_recoverable", merchant)
        if self._clock() >= grant.previous_usable_until_s:
            raise _unauthorized("Recovery window has passed", "expired", merchant)
        self._spent.add(grant.current)
        grant.previous = None
        self._rotate(grant)
        return merchant, self._pair(grant)

    def _live_grant(self, client_id: str, refresh_token: str) -> _Grant:
        grant = self._grant_of.get(refresh_token)
        if grant is None or client_id != self._config.app_id:
            raise _unauthorized("Invalid refresh token", "unknown", None)
        if not grant.active:
            raise _unauthorized("Invalid refresh token", "revoked", grant.merchant_id)
        if grant.current == refresh_token and (
            self._clock() >= grant.current_expires_at_s
        ):
            raise _unauthorized("Refresh token expired", "expired", grant.merchant_id)
        return grant

    def _dead_reason(self, refresh_token: str) -> str:
        return "reused" if refresh_token in self._spent else "revoked"

    def _rotate(self, grant: _Grant) -> None:
        refresh, refresh_expires_at_s = self._new_refresh()
        grant.current = refresh
        grant.current_expires_at_s = refresh_expires_at_s
        self._grant_of[refresh] = grant

    def _new_refresh(self) -> tuple[str, float]:
        lifetime_s = self._config.refresh_token_lifetime_s
        return secrets.token_urlsafe(32), self._clock() + lifetime_s

    def _pair(self, grant: _Grant) -> TokenPair:
        access = secrets.token_urlsafe(32)
        access_expires_at_s = self._clock() + self._config.access_token_lifetime_s
        self._access[access] = _Access(grant.merchant_id, access_expires_at_s)
        return TokenPair(
            access_token=access,
            access_token_expiration=int(access_expires_at_s),
            refresh_token=grant.current,
            refresh_token_expiration=int(grant.current_expires_at_s),
        )

    # -- access ---------------------------------------------------------------------
    def merchant_of_access(self, access_token: str) -> str:
        """The merchant an access token reads for; 401 if unknown or expired."""
        access = self._access.get(access_token)
        if access is None:
            raise _unauthorized("Invalid access token", "unknown", None)
        if self._clock() >= access.expires_at_s:
            raise _unauthorized("Access token expired", "expired", access.merchant_id)
        if self.reject_all_access:
            raise _unauthorized("Invalid access token", "fault", access.merchant_id)
        return access.merchant_id

    def expire_all_access(self) -> int:
        """End every access token's life now, earlier than its stated expiration."""
        now_s = self._clock()
        for token, access in self._access.items():
            if access.expires_at_s > now_s:
                self._access[token] = _Access(access.merchant_id, now_s)
        return len(self._access)

    def active_refresh_tokens(self, merchant_id: str) -> int:
        """How many refresh tokens of a merchant could refresh right now."""
        return len(self._grants.get(merchant_id, []))

    def _check_client(self, client_id: str, merchant_id: str) -> None:
        if client_id != self._config.app_id:
            raise Rejection("Unknown client_id", status=400, outcome="bad_request")
        if merchant_id not in self._installed:
            raise _unauthorized(
                "App not installed for merchant", "revoked", merchant_id
            )
