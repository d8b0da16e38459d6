"""Where the poller gets Clover access tokens: the token service's vault code path.

The poller never refreshes a token itself. It asks for a token valid long enough
for one request, and when Clover rejects one it says so (by fingerprint) and asks
again; the vault decides whether that means a refresh.
"""

from __future__ import annotations

from typing import Protocol


class AccessTokenLike(Protocol):
    """An access token as the vault hands it out."""

    @property
    def token(self) -> str: ...

    @property
    def expires_at_ms(self) -> int: ...

    @property
    def fingerprint(self) -> str: ...


class TokenSource(Protocol):
    """The two vault calls the poller depends on (`token_service.vault.Vault`)."""

    async def get_access_token(
        self, merchant_id: str, min_validity_s: float = ...
    ) -> AccessTokenLike:
        """A token valid for at least ``min_validity_s`` more seconds."""
        ...

    async def report_rejected(
        self, merchant_id: str, fingerprint: str
    ) -> AccessTokenLike:
        """Clover refused the token with ``fingerprint``; a token that works now."""
        ...
