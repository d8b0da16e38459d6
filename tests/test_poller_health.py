"""The Clover-wide breaker: one report per outage edge, one probe at a time."""

from __future__ import annotations

import asyncio

from producers.health import Backoff, CloverBreaker, MerchantBreaker, OutageEvent


def _recorder() -> tuple[list[OutageEvent], CloverBreaker]:
    events: list[OutageEvent] = []

    async def hook(event: OutageEvent) -> None:
        events.append(event)

    return events, CloverBreaker(hook, Backoff(base_s=0.001, max_s=0.01))


async def test_outage_is_reported_once_when_it_starts_and_once_when_it_ends() -> None:
    events, breaker = _recorder()
    for _ in range(12):
        probing = await breaker.admit()
        await breaker.failed("503", probing)
    assert breaker.is_open
    await breaker.succeeded(await breaker.admit())
    await breaker.succeeded(await breaker.admit())
    assert [(e.started, e.merchant_id) for e in events] == [(True, None), (False, None)]
    assert events[0].failures == 5


async def test_while_open_only_one_request_probes_and_an_abandoned_probe_frees_it() -> (
    None
):
    _, breaker = _recorder()
    for _ in range(5):
        await breaker.failed("reset", False)
    assert await breaker.admit() is True
    second = asyncio.create_task(breaker.admit())
    await asyncio.sleep(0.05)
    assert not second.done()  # the first probe is still out
    breaker.abandon(True)  # it never reached Clover
    assert await asyncio.wait_for(second, 1.0) is True
    await breaker.succeeded(True)
    assert not breaker.is_open
    assert await breaker.admit() is False


async def test_merchant_breaker_opens_after_three_failures_and_backs_off_more() -> None:
    events: list[OutageEvent] = []

    async def hook(event: OutageEvent) -> None:
        events.append(event)

    breaker = MerchantBreaker("M1", hook, Backoff(base_s=1.0, max_s=8.0))
    delays = [await breaker.failed("503") for _ in range(5)]
    assert breaker.is_open
    assert all(0.5 <= d <= 8.0 for d in delays)
    assert delays[4] >= 4.0  # capped exponential: 8 s ceiling, jitter down to half
    await breaker.succeeded()
    await breaker.succeeded()
    assert [(e.started, e.merchant_id) for e in events] == [(True, "M1"), (False, "M1")]
