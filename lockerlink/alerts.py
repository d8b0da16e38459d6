"""Alert e-mail on state changes only: one mail when a problem starts, one when it ends.

Every component reports conditions (`raise_alert`) and their end (`clear_alert`) as
often as it notices them; the alert's state lives in Redis, so however many times
and from however many processes a condition is reported, operators get one mail
when it begins and one recovery mail when it clears.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import redis.asyncio as aioredis

from lockerlink.keys import KeySpace
from lockerlink.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    """A condition an operator must hear about, named by a stable key."""

    key: str
    subject: str
    detail: str


class MailSender(Protocol):
    async def send(self, subject: str, body: str) -> None: ...


class SmtpSender:
    """Sends plain-text mail through one SMTP server, off the event loop."""

    def __init__(
        self, host: str, port: int, sender: str, recipients: list[str], timeout_s: float
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = recipients
        self.timeout_s = timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpSender | None:
        if settings.smtp_host is None or not settings.alert_email_to:
            return None
        recipients = [
            a.strip() for a in settings.alert_email_to.split(",") if a.strip()
        ]
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.alert_email_from,
            recipients,
            settings.smtp_timeout_s,
        )

    def _send_blocking(self, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Subject"] = subject
        message.set_content(body)
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            smtp.send_message(message)

    async def send(self, subject: str, body: str) -> None:
        await asyncio.to_thread(self._send_blocking, subject, body)


class Alerter:
    """Turns repeated condition reports into one mail per change of state."""

    def __init__(
        self,
        redis: aioredis.Redis,
        keyspace: KeySpace,
        sender: MailSender | None,
        component: str,
    ) -> None:
        self.redis = redis
        self.keyspace = keyspace
        self.sender = sender
        self.component = component

    async def raise_alert(self, alert: Alert) -> bool:
        """Report a condition; mails only if it was not already raised."""
        key = self.keyspace.alert_state(alert.key)
        started = await self.redis.set(key, alert.subject, nx=True)
        if not started:
            return False
        log.error("alert raised: %s", alert.subject, extra={"alert": alert.key})
        if not await self._mail(f"[lockerlink] {alert.subject}", alert.detail):
            # Nobody was told: forget the state so the next report tries again.
            await self.redis.delete(key)
        return True

    async def clear_alert(self, key: str, detail: str = "") -> bool:
        """Report that a condition ended; mails a recovery only if it was raised."""
        state_key = self.keyspace.alert_state(key)
        subject = await self.redis.getdel(state_key)
        if subject is None:
            return False
        text = subject.decode() if isinstance(subject, bytes) else str(subject)
        log.warning("alert cleared: %s", text, extra={"alert": key})
        await self._mail(f"[lockerlink] RESOLVED: {text}", detail or "Back to normal.")
        return True

    async def _mail(self, subject: str, body: str) -> bool:
        """Send one mail; False when it could not go out (never raises)."""
        if self.sender is None:
            return True
        footer = f"\n\n-- lockerlink {self.component}"
        try:
            await self.sender.send(subject, body + footer)
        except (OSError, smtplib.SMTPException) as exc:
            # A mail server that is down must not take the component down with it.
            log.warning("alert mail not sent: %s", type(exc).__name__)
            return False
        return True
