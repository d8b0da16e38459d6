"""Which merchants the poller polls: those connected in the token service's vault.

The vault's merchant index (in Redis) lists every merchant that authorized the app.
A merchant whose authorization is dead (``reauth_required``) has no token to poll
with and is left out until it connects again; its first poll then backfills. The
store registry is not consulted: a merchant missing there still gets its orders
into the raw topic, where the stream dead-letters them with the reason.
"""

from __future__ import annotations

from schemas.token_rotation import MerchantState
from token_service.merchants import MerchantRegistry


class ConnectedMerchants:
    """An async source of merchant ids, read from the vault's merchant index."""

    def __init__(self, registry: MerchantRegistry) -> None:
        self._registry = registry

    async def __call__(self) -> frozenset[str]:
        return frozenset(
            merchant.merchant_id
            for merchant in await self._registry.all()
            if merchant.state is not MerchantState.REAUTH_REQUIRED
        )
