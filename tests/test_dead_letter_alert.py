"""The dead-letters alert across processes: one mail, one all-clear after real quiet."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from lockerlink.alerts import Alerter, SmtpSender
from lockerlink.dead_letter_alert import DeadLetterAlert
from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from tests.mail_inbox import Inbox
from tests.poller_support import eventually

NEW = "[lockerlink] New dead letters"
CLEAR = "[lockerlink] RESOLVED: New dead letters"


def _alert(redis: aioredis.Redis, keyspace: KeySpace, port: int) -> DeadLetterAlert:
    settings = Settings(
        smtp_host="127.0.0.1", smtp_port=port, alert_email_to="ops@example.test"
    )
    alerter = Alerter(redis, keyspace, SmtpSender.from_settings(settings), "test")
    return DeadLetterAlert(alerter, quiet_s=3.0)


async def test_dead_letters_in_another_process_hold_off_the_all_clear(
    smtp_inbox: tuple[Inbox, int], redis: aioredis.Redis, keyspace: KeySpace
) -> None:
    inbox, port = smtp_inbox
    stream, delivery = _alert(redis, keyspace, port), _alert(redis, keyspace, port)
    try:
        await stream.seen("s1", "invalid_json at raw/0@1")
        # The stream's own quiet spell passes while delivery keeps setting aside.
        for n in range(20):
            await delivery.seen("s2", f"locker_rejected at lockers.s2.orders/0@{n}")
            await asyncio.sleep(0.2)
        assert inbox.subjects() == [NEW]

        await eventually(lambda: CLEAR in inbox.subjects(), "the all-clear")
        assert inbox.subjects() == [NEW, CLEAR]
    finally:
        await stream.close()
        await delivery.close()
