"""Alerts for a person: a record set aside, a store held by a locker refusing us.

Delivery calls an `AlertHook` for each alert. The default writes one ERROR line;
`lockerlink deliver` passes `mail_hook`, which also mails operators once per change.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from lockerlink.alerts import Alert as MailAlert
from lockerlink.alerts import Alerter
from lockerlink.dead_letter_alert import DeadLetterAlert

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


def locker_down_key(store_id: str) -> str:
    """The alert key of a store whose locker does not take deliveries."""
    return f"locker-down:{store_id}"


def mail_hook(alerter: Alerter, dead_letters: DeadLetterAlert) -> AlertHook:
    """A hook that logs each alert and mails operators once per change.

    A store held because its locker refuses us needs a person now: its
    `locker-down:<store>` mail goes at once (the `LockerWatch` clears it when the
    store delivers again). Dead letters raise the one `dead-letters` alert.
    """

    async def hook(alert: Alert) -> None:
        log_alert(alert)
        if alert.kind is AlertKind.DEAD_LETTER:
            await dead_letters.seen(alert.store_id, alert.detail)
        elif alert.kind is AlertKind.STORE_HELD:
            await alerter.raise_alert(
                MailAlert(
                    locker_down_key(alert.store_id),
                    f"Store {alert.store_id}: deliveries held",
                    f"{alert.detail}\nDeliveries resume by themselves once the "
                    "locker accepts them again.",
                )
            )

    return hook
