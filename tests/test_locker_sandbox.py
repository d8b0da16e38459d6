"""The locker sandbox behaves like a careful locker server, faults included."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from lockerlink.embedded import free_port, wait_for_port
from sandbox.locker import LockerFaults, LockerSandbox
from schemas.locker_order import EventType, LockerOrderEvent
from tests.locker_events import locker_event

StartLocker = Callable[..., Awaitable[LockerSandbox]]


async def _post(
    session: aiohttp.ClientSession,
    locker: LockerSandbox,
    event: LockerOrderEvent,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    sent = {"Idempotency-Key": key or event.event_id, **(headers or {})}
    async with session.post(
        f"{locker.base_url}/v1/orders", data=event.model_dump_json(), headers=sent
    ) as response:
        return response.status, await response.json()


async def test_repeated_idempotency_key_gets_first_answer_and_creates_nothing(
    locker_sandbox: StartLocker,
) -> None:
    locker = await locker_sandbox()
    event = locker_event("s1", "ORDER1")
    async with aiohttp.ClientSession() as session:
        first = await _post(session, locker, event)
        async with session.post(
            f"{locker.base_url}/v1/orders",
            data=event.model_dump_json(),
            headers={"Idempotency-Key": event.event_id},
        ) as response:
            again = (response.status, await response.json())
            replayed = response.headers.get("Idempotent-Replayed")
    assert first[0] == 201
    assert again == first
    assert replayed == "true"
    assert len(locker.state.orders) == 1
    assert locker.state.counts()["duplicates"] == 1


async def test_conflict_mode_answers_a_repeat_with_409(
    locker_sandbox: StartLocker,
) -> None:
    locker = await locker_sandbox(repeat_answer="conflict")
    event = locker_event("s1", "ORDER1")
    async with aiohttp.ClientSession() as session:
        await _post(session, locker, event)
        status, body = await _post(session, locker, event)
    assert status == 409
    assert body["event_id"] == event.event_id
    assert len(locker.state.orders) == 1


async def test_updates_apply_cancellations_free_compartment_stale_ignored(
    locker_sandbox: StartLocker,
) -> None:
    locker = await locker_sandbox(compartments=1)
    created = locker_event("s1", "A", version=10)
    updated = locker_event("s1", "A", version=20, event_type=EventType.UPDATED)
    stale = locker_event("s1", "A", version=15, event_type=EventType.UPDATED)
    cancelled = locker_event("s1", "A", version=30, event_type=EventType.CANCELLED)
    other = locker_event("s1", "B", version=40)
    async with aiohttp.ClientSession() as session:
        assert (await _post(session, locker, created))[1]["order"]["compartment"] == (
            "C001"
        )
        assert (await _post(session, locker, updated))[1]["outcome"] == "updated"
        status, body = await _post(session, locker, stale)
        assert (status, body["outcome"]) == (200, "stale")
        assert locker.state.orders["A"].order_version == 20
        await _post(session, locker, cancelled)
        assert (await _post(session, locker, other))[1]["order"]["compartment"] == (
            "C001"
        )
    assert locker.state.orders["A"].status == "cancelled"
    assert [r.outcome for r in locker.state.received] == [
        "created",
        "updated",
        "stale",
        "cancelled",
        "created",
    ]
    assert locker.state.counts()["out_of_order"] == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", {"Idempotency-Key": "k"}, 400, "malformed_json"),
        (b'{"event_id": "x"}', {"Idempotency-Key": "k"}, 422, "invalid_order"),
        (b"{}", {}, 400, "missing_idempotency_key"),
        (b"\xff\xfe", {"Idempotency-Key": "k"}, 400, "malformed_json"),
    ],
)
async def test_malformed_requests_get_a_clear_4xx(
    locker_sandbox: StartLocker,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    locker = await locker_sandbox()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{locker.base_url}/v1/orders", data=body, headers=headers) as r,
    ):
        answer = await r.json()
    assert (r.status, answer["error"]) == (status, code)
    assert locker.state.orders == {}


async def test_key_that_is_not_the_event_id_is_refused(
    locker_sandbox: StartLocker,
) -> None:
    locker = await locker_sandbox()
    async with aiohttp.ClientSession() as session:
        status, body = await _post(session, locker, locker_event("s1", "A"), key="k2")
    assert (status, body["error"]) == (422, "key_mismatch")


async def test_wrong_credential_is_refused_and_right_one_accepted(
    locker_sandbox: StartLocker,
) -> None:
    locker = await locker_sandbox(credential="c-123")
    event = locker_event("s1", "A")
    async with aiohttp.ClientSession() as session:
        refused = await _post(session, locker, event, headers={"Authorization": "x"})
        accepted = await _post(
            session, locker, event, headers={"Authorization": "Bearer c-123"}
        )
    assert refused[0] == 401
    assert "c-123" not in str(refused[1])
    assert accepted[0] == 201


@pytest.mark.parametrize(
    "faults",
    [LockerFaults(down=True), LockerFaults(error_status=502)],
    ids=["down", "5xx"],
)
async def test_failure_faults_answer_5xx_and_record_nothing(
    locker_sandbox: StartLocker, faults: LockerFaults
) -> None:
    locker = await locker_sandbox(faults=faults)
    async with aiohttp.ClientSession() as session:
        status, _ = await _post(session, locker, locker_event("s1", "A"))
        locker.set_faults(LockerFaults())
        healed, _ = await _post(session, locker, locker_event("s1", "A"))
    assert status >= 500
    assert healed == 201
    assert locker.state.counts()["faults_served"] == 1
    assert locker.state.counts()["received"] == 1


async def test_intermittent_failures_follow_the_seed(
    locker_sandbox: StartLocker,
) -> None:
    async def statuses(seed: int) -> list[int]:
        locker = await locker_sandbox(
            faults=LockerFaults(fail_probability=0.5, seed=seed)
        )
        async with aiohttp.ClientSession() as session:
            return [
                (await _post(session, locker, locker_event("s1", f"O{i}")))[0]
                for i in range(40)
            ]

    first, again = await statuses(7), await statuses(7)
    assert first == again
    assert 0 < first.count(503) < 40
    assert set(first) == {201, 503}


async def test_permanent_rejection_applies_only_to_the_named_order(
    locker_sandbox: StartLocker,
) -> None:
    locker = await locker_sandbox(faults=LockerFaults(reject_order_ids={"BAD": 422}))
    async with aiohttp.ClientSession() as session:
        bad = [await _post(session, locker, locker_event("s1", "BAD")) for _ in "ab"]
        good = await _post(session, locker, locker_event("s1", "GOOD"))
    assert [status for status, _ in bad] == [422, 422]
    assert good[0] == 201
    assert set(locker.state.orders) == {"GOOD"}


async def test_rejected_share_refuses_every_event_of_the_chosen_orders(
    locker_sandbox: StartLocker,
) -> None:
    faults = LockerFaults(reject_share=0.3, reject_status=422, seed=3)
    locker = await locker_sandbox(faults=faults)
    orders = [f"O{n}" for n in range(40)]
    async with aiohttp.ClientSession() as session:
        first = [
            (await _post(session, locker, locker_event("s1", o)))[0] for o in orders
        ]
        later = [
            (await _post(session, locker, locker_event("s1", o, version=2)))[0]
            for o in orders
        ]
        async with session.get(f"{locker.base_url}/_sandbox/received") as response:
            report = await response.json()
    refused = {o for o, status in zip(orders, first, strict=True) if status == 422}
    assert 0 < len(refused) < len(orders)
    assert later == first
    assert set(first) == {201, 422}
    assert {r["order_id"] for r in report["rejected"]} == refused
    assert report["counts"]["rejected"] == 2 * len(refused)
    assert refused.isdisjoint(locker.state.orders)


async def test_counts_tell_absorbed_repeats_from_changes_applied_twice(
    locker_sandbox: StartLocker,
) -> None:
    locker = await locker_sandbox()
    created = locker_event("s1", "A", version=10)
    cancelled = locker_event("s1", "A", version=20, event_type=EventType.CANCELLED)
    cancelled_again = locker_event(
        "s1", "A", version=30, event_type=EventType.CANCELLED
    )
    async with aiohttp.ClientSession() as session:
        for event in (created, created, cancelled, cancelled, cancelled_again):
            await _post(session, locker, event)
    counts = locker.state.counts()
    assert counts["duplicates"] == 2
    assert counts["applied_more_than_once"] == 1


async def test_stopped_locker_refuses_connections_and_restarts_on_same_port(
    locker_sandbox: StartLocker,
) -> None:
    locker = await locker_sandbox()
    url = locker.base_url
    async with aiohttp.ClientSession() as session:
        await _post(session, locker, locker_event("s1", "A"))
        await locker.stop()
        with pytest.raises(aiohttp.ClientConnectionError):
            await _post(session, locker, locker_event("s1", "B"))
        assert await locker.start() == url
        status, body = await _post(session, locker, locker_event("s1", "A"))
    assert (status, body["outcome"]) == (201, "created")
    assert locker.state.counts()["duplicates"] == 1
    assert len(locker.state.orders) == 1


async def test_admin_endpoint_sets_faults_and_reports_received(
    locker_sandbox: StartLocker,
) -> None:
    locker = await locker_sandbox()
    async with aiohttp.ClientSession() as session:
        async with session.put(
            f"{locker.base_url}/_sandbox/faults", json={"latency_s": 0.01, "down": True}
        ) as response:
            assert response.status == 200
        assert (await _post(session, locker, locker_event("s1", "A")))[0] == 503
        async with session.put(
            f"{locker.base_url}/_sandbox/faults", json={"latency_s": -1}
        ) as response:
            assert response.status == 422
        async with session.put(f"{locker.base_url}/_sandbox/faults", json={}):
            pass
        await _post(session, locker, locker_event("s1", "A"))
        async with session.get(f"{locker.base_url}/_sandbox/received") as response:
            report = await response.json()
    assert report["counts"]["faults_served"] == 1
    assert [r["order_id"] for r in report["received"]] == ["A"]


async def test_cli_serves_a_locker_until_sigterm() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "lockerlink", "sandbox", "locker"],
        *["--port", str(port)],
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 15.0, "locker")
        event = locker_event("s1", "A")
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{port}/v1/orders",
                data=event.model_dump_json(),
                headers={"Idempotency-Key": event.event_id},
            ) as response,
        ):
            assert response.status == 201
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
    assert process.returncode == 0
    assert f"127.0.0.1:{port}" in stderr.decode()
