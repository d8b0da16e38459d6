"""Alerts for a person: a record set aside, a store held by a locker refusing us.

Delivery calls an `AlertHook` for each alert. The default writes one ERROR line; the
process that runs delivery can pass its own hook (e-mail, paging) instead.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)


class AlertKind(StrEnum):
    DEAD_LETTER = "dead_letter"
    STORE_HELD = "store_held"
    """A store's deliveries wait until a person fixes its locker or registry entry."""


@dataclass(frozen=True)
class Alert:
    """Something a person must look at; never carries a secret."""

    kind: AlertKind
    store_id: str
    detail: str
    order_id: str | None = None
    event_id: str | None = None
    status: int | None = None


AlertHook = Callable[[Alert], Awaitable[None] | None]


def log_alert(alert: Alert) -> None:
    """The default hook: one ERROR line with the alert's ids."""
    log.error(
        "alert: %s",
        alert.detail,
        extra={
            "alert": alert.kind.value,
            "store": alert.store_id,
            "order": alert.order_id,
            "event": alert.event_id,
            "status": alert.status,
        },
    )


async def raise_alert(hook: AlertHook, alert: Alert) -> None:
    """Call ``hook``; a failing hook is logged and never stops delivery."""
    try:
        result = hook(alert)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("alert hook failed", extra={"store": alert.store_id})
