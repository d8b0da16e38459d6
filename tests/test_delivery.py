"""Delivery to locker sandboxes through the real broker: order, isolation, offsets."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from consumers.alerts import AlertKind
from lockerlink.registry_reload import ReloadingRegistry
from sandbox.locker import LockerFaults, LockerSandbox
from schemas.locker_order import EventType
from tests.delivery_rig import (
    committed_offset,
    create_store_topics,
    dead_letters_for,
    pattern_for,
    produce,
    registry_for,
    running_delivery,
    wait_until,
)
from tests.locker_events import locker_event, order_events

StartLocker = Callable[..., Awaitable[LockerSandbox]]
Namer = Callable[[str], str]


async def test_locker_down_mid_stream_loses_nothing_duplicates_nothing_keeps_order(
    kafka_bootstrap: str, locker_sandbox: StartLocker, unique_name: Namer
) -> None:
    store = unique_name("down")
    locker = await locker_sandbox(store_id=store)
    await create_store_topics(kafka_bootstrap, [store])
    first, second = (
        order_events(store, 15, prefix="A"),
        order_events(store, 15, prefix="B"),
    )
    group = unique_name("g")
    async with running_delivery(
        kafka_bootstrap,
        registry_for({store: locker}),
        group=group,
        pattern=pattern_for(store),
    ) as running:
        await produce(kafka_bootstrap, first)
        await wait_until(lambda: len(locker.state.orders) == 15, "first half delivered")
        await locker.stop()
        await produce(kafka_bootstrap, second)
        await wait_until(
            lambda: store in running.service.paused_stores(), "store paused"
        )
        assert len(locker.state.orders) == 15
        await locker.start()
        await wait_until(lambda: len(locker.state.orders) == 30, "backlog drained")
        await wait_until(
            lambda: store not in running.service.paused_stores(), "resumed"
        )
    produced = [e.event_id for e in first + second]
    assert locker.state.accepted_event_ids() == produced
    assert {o.event_id for o in locker.state.orders.values()} == set(produced)
    assert await committed_offset(kafka_bootstrap, group, store) == 30


async def test_intermittent_failures_still_deliver_every_version_in_order(
    kafka_bootstrap: str, locker_sandbox: StartLocker, unique_name: Namer
) -> None:
    store = unique_name("flaky")
    locker = await locker_sandbox(faults=LockerFaults(fail_probability=0.4, seed=3))
    await create_store_topics(kafka_bootstrap, [store])
    versions = [
        locker_event(store, "ONE", version=v, event_type=EventType.UPDATED)
        for v in range(1, 21)
    ]
    async with running_delivery(
        kafka_bootstrap,
        registry_for({store: locker}),
        group=unique_name("g"),
        pattern=pattern_for(store),
    ):
        await produce(kafka_bootstrap, versions)
        await wait_until(lambda: len(locker.state.received) == 20, "all versions")
    assert locker.state.faults_served > 0
    assert [r.order_version for r in locker.state.received] == list(range(1, 21))
    assert locker.state.counts()["out_of_order"] == 0


async def test_one_store_down_does_not_hold_back_the_others(
    kafka_bootstrap: str, locker_sandbox: StartLocker, unique_name: Namer
) -> None:
    prefix = unique_name("iso")
    stores = [f"{prefix}-{n}" for n in range(4)]
    lockers = {s: await locker_sandbox(store_id=s) for s in stores}
    down = stores[0]
    await lockers[down].stop()
    await create_store_topics(kafka_bootstrap, stores)
    events = {s: order_events(s, 25) for s in stores}
    async with running_delivery(
        kafka_bootstrap,
        registry_for(lockers),
        group=unique_name("g"),
        pattern=pattern_for(prefix),
    ) as running:
        await produce(kafka_bootstrap, [e for s in stores for e in events[s]])
        for store in stores[1:]:
            await wait_until(
                lambda s=store: len(lockers[s].state.orders) == 25,  # type: ignore[misc]
                f"{store} delivered",
            )
        await wait_until(lambda: down in running.service.paused_stores(), "down paused")
        assert running.service.held_stores() == {down}
        assert lockers[down].state.received == []
        await lockers[down].start()
        await wait_until(lambda: len(lockers[down].state.orders) == 25, "down drained")
    for store in stores:
        expected = [e.event_id for e in events[store]]
        assert lockers[store].state.accepted_event_ids() == expected


async def test_rejected_and_unparseable_records_are_dead_lettered_and_store_moves_on(
    kafka_bootstrap: str, locker_sandbox: StartLocker, unique_name: Namer
) -> None:
    store = unique_name("dlq")
    events = order_events(store, 6)
    rejected = events[2]
    locker = await locker_sandbox(
        faults=LockerFaults(reject_order_ids={rejected.order_id: 422})
    )
    await create_store_topics(kafka_bootstrap, [store])
    group = unique_name("g")
    async with running_delivery(
        kafka_bootstrap,
        registry_for({store: locker}),
        group=group,
        pattern=pattern_for(store),
    ) as running:
        await produce(kafka_bootstrap, events[:3])
        await produce(kafka_bootstrap, [b"{not json"], store_id=store)
        await produce(kafka_bootstrap, events[3:])
        await wait_until(lambda: len(locker.state.orders) == 5, "the good ones")
        await wait_until(lambda: len(running.alerts) == 2, "two alerts")
    letters = await dead_letters_for(kafka_bootstrap, store)
    by_reason = {letter.reason: letter for letter in letters}
    assert set(by_reason) == {"locker_rejected", "invalid_event"}
    refused = by_reason["locker_rejected"]
    assert "422" in refused.detail and "order_rejected" in refused.detail
    assert refused.original_value() == rejected.model_dump_json().encode()
    assert by_reason["invalid_event"].original_value() == b"{not json"
    assert {a.kind for a in running.alerts} == {AlertKind.DEAD_LETTER}
    # The alert (log, Sentry, mail) names the status, not the locker's words,
    # which may echo the order back; the dead letter keeps them.
    [told] = [a for a in running.alerts if "locker_rejected" in a.detail]
    assert "HTTP 422" in told.detail and "order_rejected" not in told.detail
    assert locker.state.accepted_event_ids() == [
        e.event_id for e in events if e is not rejected
    ]
    assert await committed_offset(kafka_bootstrap, group, store) == 7


async def test_a_dead_letter_too_large_to_send_goes_without_its_record(
    kafka_bootstrap: str, locker_sandbox: StartLocker, unique_name: Namer
) -> None:
    # 800 KB of junk on a store topic: its dead letter, in base64, is over the
    # producer's 1 MiB limit. The store must not stall on it.
    store = unique_name("big")
    events = order_events(store, 2)
    locker = await locker_sandbox()
    await create_store_topics(kafka_bootstrap, [store])
    async with running_delivery(
        kafka_bootstrap,
        registry_for({store: locker}),
        group=unique_name("g"),
        pattern=pattern_for(store),
    ) as running:
        await produce(kafka_bootstrap, events[:1])
        await produce(kafka_bootstrap, [b"x" * 800_000], store_id=store)
        await produce(kafka_bootstrap, events[1:])
        await wait_until(lambda: len(locker.state.orders) == 2, "both orders")
        await wait_until(lambda: len(running.alerts) == 1, "one alert")
    [letter] = await dead_letters_for(kafka_bootstrap, store)
    assert letter.reason == "invalid_event" and letter.original_omitted
    assert letter.original_value() == b""
    assert "record of 800000 bytes too large to keep here" in letter.detail
    assert f"@{letter.source_offset})" in letter.detail


async def test_nothing_is_committed_while_the_locker_has_acknowledged_nothing(
    kafka_bootstrap: str, locker_sandbox: StartLocker, unique_name: Namer
) -> None:
    store = unique_name("commit")
    locker = await locker_sandbox(faults=LockerFaults(error_status=503))
    await create_store_topics(kafka_bootstrap, [store])
    group = unique_name("g")
    async with running_delivery(
        kafka_bootstrap,
        registry_for({store: locker}),
        group=group,
        pattern=pattern_for(store),
    ) as running:
        await produce(kafka_bootstrap, order_events(store, 5))
        await wait_until(lambda: store in running.service.held_stores(), "held")
        await wait_until(lambda: locker.state.faults_served >= 3, "several tries")
        await running.service.commit_settled()
    assert await committed_offset(kafka_bootstrap, group, store) is None
    assert locker.state.received == []


async def test_409_for_a_held_key_counts_as_delivered(
    kafka_bootstrap: str, locker_sandbox: StartLocker, unique_name: Namer
) -> None:
    store = unique_name("conflict")
    locker = await locker_sandbox(repeat_answer="conflict")
    await create_store_topics(kafka_bootstrap, [store])
    events = order_events(store, 4)
    group = unique_name("g")
    async with running_delivery(
        kafka_bootstrap,
        registry_for({store: locker}),
        group=group,
        pattern=pattern_for(store),
    ) as running:
        await produce(kafka_bootstrap, events + events)
        await wait_until(lambda: len(locker.state.received) == 8, "all eight")
        await wait_until(lambda: running.service.delivered(store) == 8, "acked")
    assert locker.state.counts()["duplicates"] == 4
    assert await dead_letters_for(kafka_bootstrap, store) == []
    assert await committed_offset(kafka_bootstrap, group, store) == 8


async def test_wrong_credential_holds_the_store_and_alerts_without_dead_letters(
    kafka_bootstrap: str,
    locker_sandbox: StartLocker,
    unique_name: Namer,
    monkeypatch: object,
) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    store = unique_name("cred")
    locker = await locker_sandbox(credential="right-one")
    variable = f"TEST_LOCKER_CRED_{store.replace('-', '_').upper()}"
    monkeypatch.setenv(variable, "wrong-one")
    registry = registry_for({store: locker})
    from lockerlink.registry import StoreRegistry

    registry = StoreRegistry.from_mapping(
        {
            "stores": [
                {
                    "store_id": store,
                    "locker": {"url": locker.base_url, "credential_env": variable},
                }
            ]
        }
    )
    await create_store_topics(kafka_bootstrap, [store])
    async with running_delivery(
        kafka_bootstrap, registry, group=unique_name("g"), pattern=pattern_for(store)
    ) as running:
        await produce(kafka_bootstrap, order_events(store, 3))
        await wait_until(lambda: len(running.alerts) == 1, "alert")
        assert running.alerts[0].kind is AlertKind.STORE_HELD
        assert "wrong-one" not in running.alerts[0].detail
        assert store in running.service.paused_stores()
        monkeypatch.setenv(variable, "right-one")
        await wait_until(lambda: len(locker.state.orders) == 3, "delivered after fix")
    assert await dead_letters_for(kafka_bootstrap, store) == []


async def test_a_second_process_in_the_group_takes_a_share_of_the_stores(
    kafka_bootstrap: str, locker_sandbox: StartLocker, unique_name: Namer
) -> None:
    prefix = unique_name("share")
    stores = [f"{prefix}-{n}" for n in range(4)]
    lockers = {
        s: await locker_sandbox(faults=LockerFaults(latency_s=0.005)) for s in stores
    }
    await create_store_topics(kafka_bootstrap, stores)
    first = {s: order_events(s, 20, prefix="A") for s in stores}
    second = {s: order_events(s, 20, prefix="B") for s in stores}
    group, pattern = unique_name("g"), pattern_for(prefix)
    registry = registry_for(lockers)
    async with running_delivery(
        kafka_bootstrap, registry, group=group, pattern=pattern
    ) as one:
        await produce(kafka_bootstrap, [e for s in stores for e in first[s]])
        await wait_until(
            lambda: sum(len(lk.state.orders) for lk in lockers.values()) >= 10,
            "first process under way",
        )
        async with running_delivery(
            kafka_bootstrap, registry, group=group, pattern=pattern
        ) as two:
            await wait_until(
                lambda: (
                    bool(two.service.assigned_stores())
                    and len(one.service.assigned_stores()) < len(stores)
                ),
                "the stores are shared",
            )
            await produce(kafka_bootstrap, [e for s in stores for e in second[s]])
            await wait_until(
                lambda: all(len(lk.state.orders) == 40 for lk in lockers.values()),
                "everything delivered",
            )
            mine, theirs = one.service.assigned_stores(), two.service.assigned_stores()
            assert mine and theirs and not mine & theirs
            assert all(two.service.delivered(s) for s in theirs)
    for store in stores:
        expected = [e.event_id for e in first[store] + second[store]]
        assert lockers[store].state.accepted_event_ids() == expected


async def test_a_locker_endpoint_edited_in_the_registry_file_is_used_without_restart(
    kafka_bootstrap: str,
    locker_sandbox: StartLocker,
    unique_name: Namer,
    tmp_path: Path,
) -> None:
    store = unique_name("moved")
    old = await locker_sandbox(store_id=store)
    new = await locker_sandbox(store_id=store)
    path = tmp_path / "stores.yaml"

    def point_at(locker: LockerSandbox) -> None:
        entry = {"store_id": store, "locker": {"url": locker.base_url, "timeout_s": 2}}
        path.write_text(json.dumps({"stores": [entry]}))

    point_at(old)
    await create_store_topics(kafka_bootstrap, [store])
    first = order_events(store, 3, prefix="A")
    second = order_events(store, 3, prefix="B")
    registry = ReloadingRegistry(path, check_s=0.05)
    async with running_delivery(
        kafka_bootstrap, registry, group=unique_name("g"), pattern=pattern_for(store)
    ):
        await produce(kafka_bootstrap, first)
        await wait_until(lambda: len(old.state.orders) == 3, "first to the old locker")
        point_at(new)
        await old.stop()  # the old address is gone for good
        await produce(kafka_bootstrap, second)
        await wait_until(lambda: len(new.state.orders) == 3, "rest to the new locker")
    assert old.state.accepted_event_ids() == [e.event_id for e in first]
    assert new.state.accepted_event_ids() == [e.event_id for e in second]
    assert registry.reloads == 1


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_a_locker_refusing_us_holds_the_store_alerts_once_and_sets_nothing_aside(
    status: int,
    kafka_bootstrap: str,
    locker_sandbox: StartLocker,
    unique_name: Namer,
) -> None:
    store = unique_name(f"refuses{status}")
    locker = await locker_sandbox(store_id=store)
    events = order_events(store, 3)
    # A wrong credential or URL: the locker answers every try the same way.
    locker.set_faults(LockerFaults(reject_order_ids={events[0].order_id: status}))
    await create_store_topics(kafka_bootstrap, [store])
    async with running_delivery(
        kafka_bootstrap,
        registry_for({store: locker}),
        group=unique_name("g"),
        pattern=pattern_for(store),
    ) as running:
        await produce(kafka_bootstrap, events)

        def refused() -> int:
            lane = running.service.lanes.get(store)
            return 0 if lane is None else lane.counts.attempts_failed

        await wait_until(lambda: refused() >= 4, "several tries refused")
        assert store in running.service.paused_stores()
        assert [(a.kind, a.status) for a in running.alerts] == [
            (AlertKind.STORE_HELD, status)
        ]
        assert locker.state.orders == {}
        locker.set_faults(LockerFaults())
        await wait_until(lambda: len(locker.state.orders) == 3, "delivered once fixed")
    assert locker.state.accepted_event_ids() == [e.event_id for e in events]
    assert await dead_letters_for(kafka_bootstrap, store) == []
