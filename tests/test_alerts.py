"""Alert e-mail through a real SMTP server on loopback: one mail per change."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from lockerlink.alerts import Alert, Alerter, SmtpSender
from lockerlink.embedded import free_port
from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from tests.mail_inbox import Inbox


def _alerter(
    redis: aioredis.Redis, keyspace: KeySpace, port: int, component: str = "test"
) -> Alerter:
    settings = Settings(
        smtp_host="127.0.0.1", smtp_port=port, alert_email_to="ops@example.test"
    )
    return Alerter(redis, keyspace, SmtpSender.from_settings(settings), component)


async def test_repeated_reports_send_one_mail_and_one_recovery(
    smtp_inbox: tuple[Inbox, int], redis: aioredis.Redis, keyspace: KeySpace
) -> None:
    inbox, port = smtp_inbox
    # Two processes reporting the same condition over and over.
    first, second = _alerter(redis, keyspace, port), _alerter(redis, keyspace, port)
    outage = Alert("clover-outage", "Clover API unreachable", "5xx for 60 s")

    results = await asyncio.gather(
        *(a.raise_alert(outage) for a in [first, second] * 5)
    )
    assert results.count(True) == 1
    assert [await first.clear_alert("clover-outage") for _ in range(3)] == [
        True,
        False,
        False,
    ]

    subjects = [m["Subject"] for m in inbox.messages]
    assert subjects == [
        "[lockerlink] Clover API unreachable",
        "[lockerlink] RESOLVED: Clover API unreachable",
    ]
    assert inbox.messages[0]["To"] == "ops@example.test"


async def test_condition_raised_again_after_recovery_mails_again(
    smtp_inbox: tuple[Inbox, int], redis: aioredis.Redis, keyspace: KeySpace
) -> None:
    inbox, port = smtp_inbox
    alerter = _alerter(redis, keyspace, port)
    down = Alert("locker-down:downtown", "Store downtown: locker unreachable", "")
    await alerter.raise_alert(down)
    await alerter.clear_alert(down.key)
    await alerter.raise_alert(down)
    assert len(inbox.messages) == 3


async def test_smtp_down_does_not_raise_and_the_next_report_retries(
    smtp_inbox: tuple[Inbox, int], redis: aioredis.Redis, keyspace: KeySpace
) -> None:
    inbox, port = smtp_inbox
    dead = _alerter(redis, keyspace, free_port())
    alert = Alert("reauth:M1", "Merchant M1 must re-authorize", "")

    assert await dead.raise_alert(alert) is True  # reported, mail failed quietly
    assert await _alerter(redis, keyspace, port).raise_alert(alert) is True
    assert [m["Subject"] for m in inbox.messages] == [
        "[lockerlink] Merchant M1 must re-authorize"
    ]
