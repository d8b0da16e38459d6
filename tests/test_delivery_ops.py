"""`lockerlink deliver` as operators see it: ops endpoints, metrics and alert mail.

One real delivery process, a locker sandbox and an SMTP server on loopback: the
metrics move with real deliveries, a locker going down opens the store's breaker
and sends one `locker-down` mail (and one recovery mail when it answers again), and
a record set aside sends one `dead-letters` mail and its all-clear.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import yaml

from lockerlink.embedded import free_port
from lockerlink.keys import KeySpace
from lockerlink.status import StatusBoard
from sandbox.locker import LockerFaults, LockerSandbox
from schemas.locker_order import LockerOrderEvent
from tests.delivery_rig import create_store_topics, produce
from tests.locker_events import locker_event
from tests.mail_inbox import Inbox
from tests.ops_probe import OpsProbe
from tests.poller_support import eventually

pytestmark = pytest.mark.timeout(120)

StartLocker = Callable[..., Awaitable[LockerSandbox]]
BREAKER = "lockerlink_delivery_breaker_state"


@pytest.fixture
async def delivery_process(
    tmp_path: Path,
) -> AsyncIterator[Callable[[dict[str, str]], Awaitable[None]]]:
    started: list[asyncio.subprocess.Process] = []

    async def start(env: dict[str, str]) -> None:
        log = (tmp_path / "deliver.log").open("ab")
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "lockerlink", "deliver", "--store", env["STORE"]],
            env={**os.environ, **env},
            stdout=log,
            stderr=log,
        )
        started.append(process)

    yield start
    for process in started:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()


def _events(store: str, prefix: str, count: int) -> list[LockerOrderEvent]:
    now_ms = int(time.time() * 1000)
    return [
        locker_event(store, f"{prefix}{n}", version=now_ms + n) for n in range(count)
    ]


async def test_delivery_metrics_locker_down_and_dead_letter_mails(
    kafka_bootstrap: str,
    redis_url: str,
    keyspace: KeySpace,
    redis: aioredis.Redis,
    locker_sandbox: StartLocker,
    smtp_inbox: tuple[Inbox, int],
    unique_name: Callable[[str], str],
    delivery_process: Callable[[dict[str, str]], Awaitable[None]],
    tmp_path: Path,
) -> None:
    inbox, smtp_port = smtp_inbox
    store = unique_name("ops")
    locker = await locker_sandbox(store_id=store)
    registry = tmp_path / "stores.yaml"
    registry.write_text(
        yaml.safe_dump(
            {"stores": [{"store_id": store, "locker": {"url": locker.base_url}}]}
        )
    )
    ops_port = free_port()
    await create_store_topics(kafka_bootstrap, [store])
    await delivery_process(
        {
            "STORE": store,
            "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "LOCKERLINK_REDIS_URL": redis_url,
            "LOCKERLINK_REDIS_KEY_PREFIX": keyspace.prefix,
            "LOCKERLINK_STORE_REGISTRY_PATH": str(registry),
            "LOCKERLINK_DATA_DIR": str(tmp_path / "data"),
            "LOCKERLINK_DELIVERY_OPS_PORT": str(ops_port),
            "LOCKERLINK_DELIVERY_RETRY_MAX_S": "0.5",
            "LOCKERLINK_DELIVERY_LOCKER_DOWN_ALERT_S": "0",
            "LOCKERLINK_ALERT_DEAD_LETTERS_QUIET_S": "1",
            "LOCKERLINK_SMTP_HOST": "127.0.0.1",
            "LOCKERLINK_SMTP_PORT": str(smtp_port),
            "LOCKERLINK_ALERT_EMAIL_TO": "ops@example.test",
        }
    )
    probe = OpsProbe(f"http://127.0.0.1:{ops_port}")
    await probe.wait_ready()
    assert await probe.status("/healthz") == 200

    await produce(kafka_bootstrap, _events(store, "A", 3))
    await probe.wait_value("lockerlink_delivery_delivered_total", 3, store=store)
    await probe.wait_value("lockerlink_delivery_end_to_end_seconds_count", 3)
    await probe.wait_value("lockerlink_delivery_lag_events", 0, store=store)

    locker.set_faults(LockerFaults(down=True))
    await produce(kafka_bootstrap, _events(store, "B", 2))
    await probe.wait_value(BREAKER, 1, store=store, **{BREAKER: "open"})
    down = f"[lockerlink] Store {store}: locker unreachable"
    await eventually(lambda: down in inbox.subjects(), "the locker-down mail")

    locker.set_faults(LockerFaults())
    await probe.wait_value("lockerlink_delivery_delivered_total", 5, store=store)
    await probe.wait_value(BREAKER, 1, store=store, **{BREAKER: "closed"})
    resolved = f"[lockerlink] RESOLVED: Store {store}: locker unreachable"
    await eventually(lambda: resolved in inbox.subjects(), "the recovery mail")

    await produce(kafka_bootstrap, [b"not an event"], store_id=store)
    await probe.wait_value("lockerlink_delivery_dead_letters_total", 1, store=store)
    await eventually(
        lambda: "[lockerlink] RESOLVED: New dead letters" in inbox.subjects(),
        "the dead-letter all-clear",
    )
    assert inbox.subjects() == [
        down,
        resolved,
        "[lockerlink] New dead letters",
        "[lockerlink] RESOLVED: New dead letters",
    ]
    board = await StatusBoard(redis, keyspace).read()
    assert [s.dead_letters for s in board.stores if s.store_id == store] == [1]
