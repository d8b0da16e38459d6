"""`lockerlink poller` as a real process: killed with SIGKILL, restarted, nothing lost.

Also the crash window the kill may or may not hit, made certain: a publish noted,
sent and acknowledged but never entered in the ledger is settled from the topic by
the next holder, not published again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from lockerlink.broker import ensure_topics, make_producer
from lockerlink.embedded import free_port
from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from producers.journal import PublishJournal
from producers.merchants import ConnectedMerchants
from producers.process import PollerProcess
from sandbox.clover import CloverSandbox
from sandbox.clover_config import CloverConfig
from schemas.raw_order import RawSource, order_record
from schemas.topics import CORE_TOPICS, RAW_ORDERS
from tests.poller_support import (
    connected_vault,
    duplicates,
    eventually,
    latest_versions,
    make_topic,
    read_topic,
)
from tests.sandboxes import SandboxFactory


def _poller_env(
    settings: Settings, keyspace: KeySpace, clover_url: str
) -> dict[str, str]:
    return {
        **os.environ,
        "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "LOCKERLINK_REDIS_URL": settings.redis_url,
        "LOCKERLINK_REDIS_KEY_PREFIX": keyspace.prefix,
        "LOCKERLINK_DATA_DIR": str(settings.data_dir),
        "LOCKERLINK_CLOVER_API_BASE_URL": clover_url,
        "LOCKERLINK_CLOVER_TIMEOUT_S": "2",
        "LOCKERLINK_TOKEN_REFRESH_LEASE_S": "5",
        "LOCKERLINK_POLLER_INTERVAL_S": "0.1",
        "LOCKERLINK_POLLER_LOOKBACK_S": "1",
        "LOCKERLINK_POLLER_SAFETY_LAG_S": "0.1",
        "LOCKERLINK_POLLER_LEASE_TTL_S": "1.5",
        "LOCKERLINK_POLLER_PAGE_SIZE": "10",
        "LOCKERLINK_POLLER_BACKOFF_MAX_S": "0.5",
        "LOCKERLINK_POLLER_WEBHOOK_PORT": "0",
        "LOCKERLINK_LOG_LEVEL": "WARNING",
    }


def _start(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "lockerlink", "poller"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _keep_changing(sandbox: CloverSandbox, stop: asyncio.Event) -> None:
    """Create and update orders steadily, as a busy restaurant does."""
    merchants = sandbox.merchant_ids
    made: list[tuple[str, str]] = []
    turn = 0
    while not stop.is_set():
        merchant_id = merchants[turn % len(merchants)]
        if turn % 3 == 2 and made:
            owner, order_id = made[turn % len(made)]
            sandbox.orders.update(owner, order_id, {"note": f"change {turn}"})
        else:
            order = sandbox.orders.create(merchant_id, {"title": f"t{turn}"})
            made.append((merchant_id, order["id"]))
        turn += 1
        await asyncio.sleep(0.01)


async def test_poller_killed_with_sigkill_resumes_without_gap_or_repeat(
    clover_sandbox_factory: SandboxFactory,
    settings: Settings,
    redis: aioredis.Redis,
    keyspace: KeySpace,
    tmp_path: Path,
) -> None:
    run = uuid.uuid4().hex[:6].upper()
    config = CloverConfig(merchant_ids=(f"KILLA{run}", f"KILLB{run}"))
    sandbox = await clover_sandbox_factory(config)
    assert sandbox.base_url is not None
    await ensure_topics(settings.kafka_bootstrap_servers, CORE_TOPICS, 3)
    vault = await connected_vault(
        settings.model_copy(update={"clover_api_base_url": sandbox.base_url}),
        redis,
        keyspace,
        sandbox,
        sandbox.merchant_ids,
    )
    env = _poller_env(settings, keyspace, sandbox.base_url)
    stop = asyncio.Event()
    changing = asyncio.create_task(_keep_changing(sandbox, stop))
    first = _start(env, tmp_path / "first.log")
    started = [first]
    try:
        await eventually(
            lambda: _cursors_set(redis, keyspace, sandbox.merchant_ids), "first polls"
        )
        await asyncio.sleep(0.7)  # let it work mid-stream before the kill
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        await asyncio.sleep(0.3)
        second = _start(env, tmp_path / "second.log")
        started.append(second)
        await asyncio.sleep(0.5)
        stop.set()
        await changing
        expected = latest_versions(sandbox)
        seen = await _wait_for_versions(settings, sandbox.merchant_ids, expected)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=15) == 0
    finally:
        stop.set()
        for process in started:
            if process.poll() is None:
                process.kill()
        await vault.close()
    assert duplicates(seen) == []
    assert expected <= {(r.order_id, r.modified_ms) for r in seen}


async def _cursors_set(
    redis: aioredis.Redis, keyspace: KeySpace, merchant_ids: list[str]
) -> bool:
    values = await redis.mget([keyspace.poll_cursor(m) for m in merchant_ids])
    return all(v is not None for v in values)


async def _wait_for_versions(
    settings: Settings, merchant_ids: list[str], expected: set[tuple[str, int]]
) -> list[Any]:
    """The merchants' records on the raw topic, once every expected version is in."""
    seen: list[Any] = []

    async def complete() -> bool:
        nonlocal seen
        seen = await read_topic(
            settings.kafka_bootstrap_servers, RAW_ORDERS, 1, keys=merchant_ids
        )
        return expected <= {(r.order_id, r.modified_ms) for r in seen}

    await eventually(complete, "every version published", timeout_s=40)
    return seen


async def test_unfinished_publish_is_settled_from_the_topic_not_repeated(
    clover_sandbox_factory: SandboxFactory,
    settings: Settings,
    redis: aioredis.Redis,
    keyspace: KeySpace,
    unique_name: Callable[[str], str],
) -> None:
    sandbox = await clover_sandbox_factory(CloverConfig(merchant_ids=("JOURNALM1",)))
    assert sandbox.base_url is not None
    merchant_id = sandbox.merchant_ids[0]
    orders = [sandbox.orders.create(merchant_id, {"title": f"t{i}"}) for i in range(3)]
    topic = await make_topic(settings.kafka_bootstrap_servers, unique_name("raw"))
    # What a poller killed after Kafka's acknowledgement leaves behind: the first
    # two orders on the topic and in the note, but not in the ledger.
    noted = [(o["id"], float(o["modifiedTime"])) for o in orders[:2]]
    await PublishJournal(redis, keyspace).begin(merchant_id, 0, noted)
    producer = make_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    for order in orders[:2]:
        record = order_record(
            merchant_id, order, fetched_at_ms=1, source=RawSource.POLL
        )
        await producer.send_and_wait(
            topic, record.value, key=record.key, headers=list(record.headers)
        )
    await producer.stop()

    clover_settings = settings.model_copy(
        update={
            "clover_api_base_url": sandbox.base_url,
            "poller_interval_s": 0.1,
            "poller_lease_ttl_s": 1.5,
            "poller_webhook_port": 0,
        }
    )
    vault = await connected_vault(
        clover_settings, redis, keyspace, sandbox, [merchant_id]
    )
    poller = PollerProcess(
        clover_settings,
        vault,
        ConnectedMerchants(redis, keyspace),
        keys=keyspace,
        topic=topic,
        serve_webhooks=False,
    )
    await poller.start()
    try:
        await eventually(lambda: poller.poller.stats.polls >= 2, "two polls")
    finally:
        await poller.stop()
        await vault.close()

    records = await read_topic(settings.kafka_bootstrap_servers, topic, 3)
    assert duplicates(records) == []
    assert sorted(r.order_id for r in records) == sorted(o["id"] for o in orders)
    assert await redis.get(keyspace.publish_journal(merchant_id)) is None


def test_a_broker_out_of_reach_stops_the_poller_with_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LOCKERLINK_DATA_DIR": str(tmp_path),
        "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "LOCKERLINK_POLLER_WEBHOOK_PORT": "0",
    }
    finished = subprocess.run(
        [sys.executable, "-m", "lockerlink", "poller"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 1
    assert "Traceback" not in finished.stderr
    assert any(
        line.startswith("lockerlink: cannot reach the broker at 127.0.0.1:")
        for line in finished.stderr.splitlines()
    )
