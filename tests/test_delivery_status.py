"""Delivery keeps the status board current: deliveries, breaker, dead letters, lag."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from consumers.status_feed import StatusFeed
from lockerlink.keys import KeySpace
from lockerlink.status import StatusBoard, StoreStatus
from sandbox.locker import LockerSandbox
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


async def _store_on_board(
    board: StatusBoard, store: str, check: Callable[[StoreStatus], bool]
) -> StoreStatus:
    deadline = time.monotonic() + 30
    while True:
        found = [s for s in (await board.read()).stores if s.store_id == store]
        if found and check(found[0]):
            return found[0]
        assert time.monotonic() < deadline, f"board never showed it: {found}"
        await asyncio.sleep(0.05)


async def test_board_shows_held_store_with_lag_then_deliveries_after_recovery(
    kafka_bootstrap: str,
    locker_sandbox: StartLocker,
    unique_name: Callable[[str], str],
    redis: aioredis.Redis,
    keyspace: KeySpace,
) -> None:
    store = unique_name("status")
    locker = await locker_sandbox()
    await locker.stop()
    await create_store_topics(kafka_bootstrap, [store])
    board = StatusBoard(redis, keyspace)
    async with running_delivery(
        kafka_bootstrap,
        registry_for({store: locker}),
        group=unique_name("g"),
        pattern=pattern_for(store),
        status=StatusFeed(board),
    ) as running:
        await produce(kafka_bootstrap, [b"garbage"], store_id=store)
        await produce(kafka_bootstrap, order_events(store, 5))
        await wait_until(lambda: store in running.service.held_stores(), "held")
        assert await running.service.report_lag() == {store: 5}
        # Between probes the breaker is open; during one, half open.
        held = await _store_on_board(
            board, store, lambda s: s.lag == 5 and s.breaker == "open"
        )
        assert (held.dead_letters, held.delivered) == (1, 0)

        await locker.start()
        recovered = await _store_on_board(board, store, lambda s: s.delivered == 5)
        assert recovered.breaker == "closed"
        assert await running.service.report_lag() == {store: 0}
    assert (await board.read()).latency


class _BreakerLog(StatusFeed):
    """A status feed that also keeps every breaker state a lane reported."""

    def __init__(self, board: StatusBoard) -> None:
        super().__init__(board)
        self.states: list[str] = []

    def breaker(self, store_id: str, state: str) -> None:
        self.states.append(state)
        super().breaker(store_id, state)


async def test_breaker_goes_open_half_open_per_probe_and_closed_on_success(
    kafka_bootstrap: str,
    locker_sandbox: StartLocker,
    unique_name: Callable[[str], str],
    redis: aioredis.Redis,
    keyspace: KeySpace,
) -> None:
    store = unique_name("probe")
    locker = await locker_sandbox()
    await locker.stop()
    await create_store_topics(kafka_bootstrap, [store])
    board = StatusBoard(redis, keyspace)
    feed = _BreakerLog(board)
    async with running_delivery(
        kafka_bootstrap,
        registry_for({store: locker}),
        group=unique_name("g"),
        pattern=pattern_for(store),
        status=feed,
    ) as running:
        await produce(kafka_bootstrap, order_events(store, 2))
        await wait_until(lambda: feed.states.count("half_open") >= 2, "two probes")
        await locker.start()
        await wait_until(lambda: running.service.delivered(store) == 2, "delivered")
    states = feed.states
    assert states[0] == "open"
    assert states[-2:] == ["half_open", "closed"]
    steps = set(itertools.pairwise(states))
    allowed = {("open", "half_open"), ("half_open", "open"), ("half_open", "closed")}
    assert steps <= allowed
    assert ("half_open", "open") in steps  # a failed probe
    stored = [s for s in (await board.read()).stores if s.store_id == store]
    assert stored[0].breaker == "closed"
