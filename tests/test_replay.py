"""Replay by time re-delivers exactly the window, safely, and leaves an audit line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from consumers.audit import read_audit
from consumers.replay import REPLAY_HEADER, StoreReplay, parse_time, replay_raw
from consumers.topic_window import read_windows, reader, windows_by_time
from lockerlink.broker import ensure_topics, make_producer
from lockerlink.cli import _add_component_commands, cli
from lockerlink.errors import ConfigError
from sandbox.locker import LockerSandbox
from schemas.topics import RAW_ORDERS, TopicSpec
from tests.delivery_rig import create_store_topics, produce, registry_for
from tests.locker_events import order_events

StartLocker = Callable[..., Awaitable[LockerSandbox]]
HOUR_MS = 3_600_000


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_times_read_as_iso_epoch_ms_or_age() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert parse_time("2026-12-03T10:00:00Z") == datetime(2026, 12, 3, 10, tzinfo=UTC)
    assert parse_time("2026-12-03T10:00:00") == datetime(2026, 12, 3, 10, tzinfo=UTC)
    assert parse_time("90m", now=now) == datetime(2026, 12, 3, 10, 30, tzinfo=UTC)
    assert parse_time(str(_ms(now))) == now
    with pytest.raises(ConfigError, match="cannot read time"):
        parse_time("yesterday-ish")


async def test_replay_by_time_delivers_exactly_the_window_and_repeats_safely(
    kafka_bootstrap: str, locker_sandbox: StartLocker, unique_name: Callable[[str], str]
) -> None:
    store = unique_name("replay")
    locker = await locker_sandbox(store_id=store)
    await create_store_topics(kafka_bootstrap, [store])
    base_ms = int(time.time() * 1000) - 5 * HOUR_MS
    batches = [order_events(store, 6, prefix=p) for p in "ABC"]
    for hour, batch in enumerate(batches):
        await produce(kafka_bootstrap, batch, timestamp_ms=base_ms + hour * HOUR_MS)
    since = datetime.fromtimestamp((base_ms + HOUR_MS - 1) / 1000, UTC)
    until = datetime.fromtimestamp((base_ms + 2 * HOUR_MS - 1) / 1000, UTC)
    job = StoreReplay(kafka_bootstrap, registry_for({store: locker}), store)

    dry = await job.run(since, until, dry_run=True)
    assert (dry.matched, locker.state.received) == (6, [])

    first = await job.run(since, until, dry_run=False)
    assert locker.state.accepted_event_ids() == [e.event_id for e in batches[1]]
    assert (first.matched, first.delivered, first.already_held) == (6, 6, 0)

    again = await job.run(since, until, dry_run=False)
    assert (again.delivered, again.already_held) == (6, 6)
    assert len(locker.state.orders) == 6


async def test_replay_command_shows_a_summary_and_writes_an_audit_line(
    kafka_bootstrap: str,
    locker_sandbox: StartLocker,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    store = unique_name("replaycli")
    locker = await locker_sandbox()
    await create_store_topics(kafka_bootstrap, [store])
    await produce(kafka_bootstrap, order_events(store, 3))
    registry = tmp_path / "stores.yaml"
    registry.write_text(
        f"stores:\n  - store_id: {store}\n    locker: {{url: '{locker.base_url}'}}\n"
    )
    env = {
        "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LOCKERLINK_STORE_REGISTRY_PATH": str(registry),
        "LOCKERLINK_DATA_DIR": str(tmp_path / "data"),
    }
    _add_component_commands()
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["replay", "--store", store, "--since", "1h"],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "delivered    3" in result.output
    assert len(locker.state.orders) == 3
    [line] = read_audit(tmp_path / "data")
    assert (line["what"], line["store"], line["count"]) == ("replay store", store, 3)
    assert line["who"]


async def test_replay_raw_republishes_only_that_merchants_window(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    await ensure_topics(kafka_bootstrap, [TopicSpec(RAW_ORDERS)], 3)
    merchant, other = unique_name("M").upper(), unique_name("N").upper()
    base_ms = int(time.time() * 1000) - 10 * HOUR_MS
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        for hour in range(3):
            for who in (merchant, other):
                await producer.send_and_wait(
                    RAW_ORDERS,
                    key=who.encode(),
                    value=f'{{"order": "{who}-{hour}"}}'.encode(),
                    timestamp_ms=base_ms + hour * HOUR_MS,
                )
    finally:
        await producer.stop()
    since = datetime.fromtimestamp((base_ms + HOUR_MS) / 1000, UTC)

    summary = await replay_raw(
        kafka_bootstrap, merchant, since, None, dry_run=False, replay_id="r1"
    )

    assert (summary.matched, summary.republished) == (2, 2)
    consumer = reader(kafka_bootstrap)
    await consumer.start()
    try:
        windows = await windows_by_time(consumer, RAW_ORDERS, None)
        replayed = [
            record.value
            async for record in read_windows(consumer, windows)
            if (REPLAY_HEADER, b"r1") in (record.headers or ())
            and record.key == merchant.encode()
        ]
    finally:
        await consumer.stop()
    assert sorted(replayed) == [
        f'{{"order": "{merchant}-1"}}'.encode(),
        f'{{"order": "{merchant}-2"}}'.encode(),
    ]
