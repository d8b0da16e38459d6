"""The locker-down alert waits out its threshold, mails once, and recovers once."""

from __future__ import annotations

import redis.asyncio as aioredis

from consumers.locker_watch import LockerWatch
from lockerlink.alerts import Alerter, SmtpSender
from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from tests.mail_inbox import Inbox

DOWN = "[lockerlink] Store s1: locker unreachable"
BACK = "[lockerlink] RESOLVED: Store s1: locker unreachable"


class _Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def _watch(
    redis: aioredis.Redis,
    keyspace: KeySpace,
    port: int,
    held: dict[str, bool],
    clock: _Clock,
) -> LockerWatch:
    settings = Settings(
        smtp_host="127.0.0.1", smtp_port=port, alert_email_to="ops@example.test"
    )
    alerter = Alerter(redis, keyspace, SmtpSender.from_settings(settings), "test")
    return LockerWatch(lambda: held, alerter, threshold_s=120, clock=clock)


async def test_a_short_failure_sends_nothing_a_long_one_one_mail_and_one_recovery(
    smtp_inbox: tuple[Inbox, int], redis: aioredis.Redis, keyspace: KeySpace
) -> None:
    inbox, port = smtp_inbox
    held, clock = {"s1": True}, _Clock()
    watch = _watch(redis, keyspace, port, held, clock)

    await watch.check()
    clock.now_s += 60
    held["s1"] = False
    await watch.check()
    assert inbox.subjects() == []

    held["s1"] = True
    await watch.check()
    for _ in range(3):
        clock.now_s += 100
        await watch.check()
    held["s1"] = False
    await watch.check()
    await watch.check()
    assert inbox.subjects() == [DOWN, BACK]


async def test_a_store_moved_to_another_process_is_forgotten_not_cleared(
    smtp_inbox: tuple[Inbox, int], redis: aioredis.Redis, keyspace: KeySpace
) -> None:
    inbox, port = smtp_inbox
    held, clock = {"s1": True}, _Clock()
    watch = _watch(redis, keyspace, port, held, clock)
    await watch.check()
    clock.now_s += 200
    await watch.check()

    del held["s1"]  # its partitions were revoked: another process delivers it now
    await watch.check()
    assert inbox.subjects() == [DOWN]
