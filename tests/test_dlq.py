"""Dead letters can be listed, shown and re-driven; an unchanged reason is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from consumers.dlq import Entry, Filters, RedriveLedger, list_entries, redrive
from lockerlink.cli import _add_component_commands, cli
from lockerlink.embedded import free_port
from sandbox.locker import LockerFaults, LockerSandbox
from schemas.dead_letter import DeadLetter
from tests.delivery_rig import (
    create_store_topics,
    pattern_for,
    produce,
    registry_for,
    running_delivery,
    wait_until,
)
from tests.locker_events import order_events

StartLocker = Callable[..., Awaitable[LockerSandbox]]


async def test_redrive_after_a_fix_delivers_and_unchanged_reasons_are_refused(
    kafka_bootstrap: str,
    locker_sandbox: StartLocker,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    store = unique_name("redrive")
    events = order_events(store, 4)
    refused_order = events[1].order_id
    locker = await locker_sandbox(
        faults=LockerFaults(reject_order_ids={refused_order: 400})
    )
    await create_store_topics(kafka_bootstrap, [store])
    data_dir = tmp_path / "data"
    async with running_delivery(
        kafka_bootstrap,
        registry_for({store: locker}),
        group=unique_name("g"),
        pattern=pattern_for(store),
    ) as running:
        await produce(kafka_bootstrap, events)
        await produce(kafka_bootstrap, [b'{"event_id": 1}'], store_id=store)
        await wait_until(lambda: len(running.alerts) == 2, "two dead letters")
        entries = await list_entries(kafka_bootstrap, Filters(store_id=store))
        assert sorted(e.letter.reason for e in entries) == [
            "invalid_event",
            "locker_rejected",
        ]
        assert refused_order not in locker.state.orders

        locker.set_faults(LockerFaults())  # the fix
        results = await redrive(kafka_bootstrap, entries, data_dir=data_dir)
        outcome = {r.entry.letter.reason: r for r in results}
        assert outcome["locker_rejected"].sent
        assert not outcome["invalid_event"].sent
        assert "still not a locker order event" in str(
            outcome["invalid_event"].refused_because
        )
        await wait_until(lambda: refused_order in locker.state.orders, "re-driven")

        [rejected] = await list_entries(
            kafka_bootstrap, Filters(store_id=store, reason="locker_rejected")
        )
        [again] = await redrive(kafka_bootstrap, [rejected], data_dir=data_dir)
        assert not again.sent
        assert "already re-driven" in str(again.refused_because)

        [forced] = await redrive(
            kafka_bootstrap, [rejected], data_dir=data_dir, force=True
        )
        assert forced.sent
        await wait_until(lambda: locker.state.counts()["duplicates"] == 1, "forced")
    assert len(locker.state.orders) == 4


async def test_dlq_list_command_filters_by_store_and_reason(
    kafka_bootstrap: str,
    locker_sandbox: StartLocker,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    store = unique_name("dlqlist")
    locker = await locker_sandbox()
    await create_store_topics(kafka_bootstrap, [store])
    async with running_delivery(
        kafka_bootstrap,
        registry_for({store: locker}),
        group=unique_name("g"),
        pattern=pattern_for(store),
    ) as running:
        await produce(kafka_bootstrap, [b"garbage"], store_id=store)
        await wait_until(lambda: len(running.alerts) == 1, "dead letter")
    env = {
        "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LOCKERLINK_DATA_DIR": str(tmp_path / "data"),
    }
    _add_component_commands()

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    listed = await asyncio.to_thread(run, "dlq", "list", "--store", store)
    assert f"{store}\tinvalid_event" in listed
    none = await asyncio.to_thread(
        run, "dlq", "list", "--store", store, "--reason", "locker_rejected"
    )
    assert store not in none
    dead_letter_id = listed.split("\t")[0].splitlines()[-1]
    shown = await asyncio.to_thread(run, "dlq", "show", dead_letter_id)
    assert '"original_value": "garbage"' in shown


def test_dlq_list_with_the_broker_out_of_reach_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    env = {
        "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "LOCKERLINK_DATA_DIR": str(tmp_path / "data"),
    }
    _add_component_commands()
    result = CliRunner().invoke(cli, ["dlq", "list"], env=env)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "lockerlink: cannot reach the broker at 127.0.0.1:" in result.output


def test_a_half_written_redrive_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    letter = DeadLetter(
        reason="locker_rejected",
        detail="locker answered HTTP 422",
        error_class="LockerRejection",
        component="consumers.delivery",
        source_topic="lockers.s1.orders",
        source_partition=0,
        source_offset=4,
        original_key_b64=None,
        original_value_b64=DeadLetter.encode(b'{"event_id": "e1"}'),
        at=datetime.now(UTC),
    )
    entry = Entry(0, 9, letter)
    ledger = RedriveLedger.in_data_dir(tmp_path)
    ledger.record(entry, "2026-12-04T10:00:00+00:00")
    with ledger.path.open("a", encoding="utf-8") as handle:
        handle.write('{"fingerprint": "ab')  # the process died mid-write
    assert ledger.previous(entry) is not None
    assert ledger.previous(Entry(0, 10, letter.without_original())) is None
