"""The reauth alert: a merchant's refresh token is dead until it authorizes again.

The vault raises it once per transition into ``reauth_required`` and clears it when
the merchant connects again. It always reaches the log at ERROR; with an
`lockerlink.alerts.Alerter` it also becomes one e-mail per change, across every
process (the alert state lives in Redis).
"""

from __future__ import annotations

import logging

from lockerlink.alerts import Alert, Alerter

log = logging.getLogger(__name__)


def reauth_alert_key(merchant_id: str) -> str:
    return f"reauth:{merchant_id}"


class ReauthAlerts:
    """Raises and clears the reauth alert of a merchant."""

    def __init__(self, alerter: Alerter | None = None) -> None:
        self._alerter = alerter

    async def raise_for(
        self, merchant_id: str, store_ids: tuple[str, ...], cause: str
    ) -> None:
        stores = ", ".join(store_ids) or "no store"
        subject = f"merchant {merchant_id} ({stores}) must authorize lockerlink again"
        detail = (
            f"Clover refused the refresh token of merchant {merchant_id}: {cause}\n"
            f"Stores affected: {stores}. Start a new authorization with\n"
            f"  lockerlink merchants connect --store <store>\n"
            "Lockers of these stores get no Clover token until then."
        )
        if self._alerter is None:
            log.error(subject, extra={"merchant_id": merchant_id, "stores": stores})
            return
        await self._alerter.raise_alert(
            Alert(reauth_alert_key(merchant_id), subject, detail)
        )

    async def clear_for(self, merchant_id: str) -> None:
        if self._alerter is not None:
            await self._alerter.clear_alert(
                reauth_alert_key(merchant_id), "The merchant authorized again."
            )
