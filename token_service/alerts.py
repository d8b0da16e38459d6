"""Alerts that need a person: a merchant must authorize the app again.

The vault raises one alert per transition into ``reauth_required``. It is always
logged at ERROR; an ``AlertHook`` (for example an e-mail sender) may be passed to
the vault to deliver it elsewhere as well.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MerchantAlert:
    """A merchant whose tokens stopped working for good until re-authorized."""

    merchant_id: str
    store_ids: tuple[str, ...]
    summary: str
    at: datetime


AlertHook = Callable[[MerchantAlert], Awaitable[None]]


async def deliver_alert(alert: MerchantAlert, hook: AlertHook | None) -> None:
    """Log the alert at ERROR, then hand it to ``hook``; a failing hook is logged."""
    log.error(
        "merchant needs re-authorization: %s",
        alert.summary,
        extra={"merchant_id": alert.merchant_id, "stores": ",".join(alert.store_ids)},
    )
    if hook is None:
        return
    try:
        await hook(alert)
    except Exception:  # a broken alert channel must not break token refresh
        log.exception("alert hook failed", extra={"merchant_id": alert.merchant_id})
