"""`lockerlink deliver` as a real process: killed mid-batch, nothing is doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml

from sandbox.locker import LockerFaults, LockerSandbox
from tests.delivery_rig import create_store_topics, produce, wait_until
from tests.locker_events import order_events

StartLocker = Callable[..., Awaitable[LockerSandbox]]


async def _deliver_process(
    store: str, env: dict[str, str]
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "lockerlink", "deliver", "--store", store],
        env={**os.environ, **env},
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_sigkilled_delivery_redelivers_same_keys_and_locker_holds_one_copy(
    kafka_bootstrap: str,
    locker_sandbox: StartLocker,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    store = unique_name("kill")
    locker = await locker_sandbox(
        store_id=store, credential="in-store-cred", faults=LockerFaults(latency_s=0.02)
    )
    registry = tmp_path / "stores.yaml"
    registry.write_text(
        yaml.safe_dump(
            {
                "stores": [
                    {
                        "store_id": store,
                        "locker": {
                            "url": locker.base_url,
                            "credential_env": "TEST_LOCKER_CREDENTIAL",
                        },
                    }
                ]
            }
        )
    )
    env = {
        "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LOCKERLINK_STORE_REGISTRY_PATH": str(registry),
        "LOCKERLINK_DATA_DIR": str(tmp_path / "data"),
        "LOCKERLINK_DELIVERY_SESSION_TIMEOUT_S": "2",
        "TEST_LOCKER_CREDENTIAL": "in-store-cred",
    }
    events = order_events(store, 40)
    await create_store_topics(kafka_bootstrap, [store])
    await produce(kafka_bootstrap, events)

    # Commits far apart: everything the first process delivered is redelivered.
    first = await _deliver_process(
        store, {**env, "LOCKERLINK_DELIVERY_COMMIT_INTERVAL_S": "600"}
    )
    try:
        await wait_until(lambda: len(locker.state.received) >= 10, "a first batch")
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    delivered_before_kill = len(locker.state.received)
    assert delivered_before_kill < 40

    second = await _deliver_process(store, env)
    try:
        await wait_until(lambda: len(locker.state.orders) == 40, "all forty")
    finally:
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), timeout=30) == 0

    assert locker.state.accepted_event_ids() == [e.event_id for e in events]
    assert locker.state.counts()["duplicates"] >= delivered_before_kill
    assert locker.state.malformed == 0
    assert {o.event_id for o in locker.state.orders.values()} == {
        e.event_id for e in events
    }
