"""The Clover sandbox's rate limits: per token and per app, rate and concurrency."""

from __future__ import annotations

import asyncio

import aiohttp

from sandbox.clover import CloverSandbox
from sandbox.clover_config import CloverConfig
from sandbox.clover_limits import RateLimiter, RateLimits
from tests.clover_client import MerchantClient
from tests.sandboxes import ManualClock, SandboxFactory


async def _started(
    factory: SandboxFactory, limits: RateLimits, clock: ManualClock
) -> CloverSandbox:
    return await factory(CloverConfig(limits=limits), clock=clock)


async def _until_in_flight(limiter: RateLimiter, token: str | None, n: int) -> None:
    while limiter.in_flight(token) < n:  # noqa: ASYNC110 - no event to await
        await asyncio.sleep(0.005)


async def test_seventeenth_request_in_a_second_gets_429_naming_the_token_limit(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    clock = ManualClock()
    sandbox = await _started(clover_sandbox_factory, RateLimits(), clock)
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, sandbox, sandbox.merchant_ids[0])
        statuses = [await client.status() for _ in range(16)]
        refused, body, headers = await client.get("/orders")
        clock.advance(1.0)
        later = await client.status()
    assert statuses == [200] * 16
    assert refused == 429 and body["message"]
    assert headers["X-RateLimit-tokenLimit"] == "16"
    assert headers["Retry-After"] == "1"
    assert later == 200
    assert sandbox.calls.count("orders.list", outcome="rate_limited") == 1


async def test_retrying_early_makes_the_wait_longer(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    async def second_retry_status(count_refused: bool) -> int:
        clock = ManualClock()
        limits = RateLimits(token_per_s=2, refused_requests_count=count_refused)
        sandbox = await _started(clover_sandbox_factory, limits, clock)
        async with aiohttp.ClientSession() as http:
            client = MerchantClient(http, sandbox, sandbox.merchant_ids[0])
            assert [await client.status(), await client.status()] == [200, 200]
            clock.advance(0.5)
            assert await client.status() == 429
            clock.advance(0.25)
            assert await client.status() == 429
            # A full second after the two admitted calls.
            clock.advance(0.25)
            return await client.status()

    assert await second_retry_status(count_refused=False) == 200
    assert await second_retry_status(count_refused=True) == 429


async def test_app_limit_spans_merchants(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    clock = ManualClock()
    limits = RateLimits(token_per_s=None, app_per_s=3)
    sandbox = await _started(clover_sandbox_factory, limits, clock)
    other = sandbox.add_merchant()
    async with aiohttp.ClientSession() as http:
        first = MerchantClient(http, sandbox, sandbox.merchant_ids[0])
        second = MerchantClient(http, sandbox, other)
        admitted = [await first.status(), await second.status(), await first.status()]
        refused, _, headers = await second.get("/orders")
    assert admitted == [200, 200, 200]
    assert refused == 429
    assert headers["X-RateLimit-crossTokenLimit"] == "3"


async def test_concurrent_limit_per_token_refuses_the_extra_call(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    limits = RateLimits(token_concurrent=2)
    sandbox = await _started(clover_sandbox_factory, limits, ManualClock())
    sandbox.faults.latency(60.0)
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, sandbox, sandbox.merchant_ids[0])
        slow = [asyncio.create_task(client.status()) for _ in range(2)]
        await _until_in_flight(sandbox.limiter, client.access_token, 2)
        refused, _, headers = await client.get("/orders")
        sandbox.faults.clear()
        finished = await asyncio.gather(*slow)
    assert refused == 429
    assert headers["X-RateLimit-tokenConcurrentLimit"] == "2"
    assert finished == [200, 200]


async def test_concurrent_limit_per_app_spans_tokens(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    limits = RateLimits(app_concurrent=2)
    sandbox = await _started(clover_sandbox_factory, limits, ManualClock())
    merchant = sandbox.merchant_ids[0]
    sandbox.faults.latency(60.0)
    async with aiohttp.ClientSession() as http:
        clients = [MerchantClient(http, sandbox, merchant) for _ in range(3)]
        slow = [asyncio.create_task(c.status()) for c in clients[:2]]
        await _until_in_flight(sandbox.limiter, None, 2)
        refused, _, headers = await clients[2].get("/orders")
        sandbox.faults.clear()
        await asyncio.gather(*slow)
    assert refused == 429
    assert headers["X-RateLimit-crossTokenConcurrentLimit"] == "2"


async def test_lifted_limits_admit_everything(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    sandbox = await _started(clover_sandbox_factory, RateLimits.lifted(), ManualClock())
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, sandbox, sandbox.merchant_ids[0])
        statuses = await asyncio.gather(*(client.status() for _ in range(80)))
    assert set(statuses) == {200}


async def test_limiter_forgets_tokens_idle_for_a_whole_window(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    clock = ManualClock()
    sandbox = await _started(clover_sandbox_factory, RateLimits(), clock)
    async with aiohttp.ClientSession() as http:
        first = MerchantClient(http, sandbox, sandbox.merchant_ids[0])
        assert await first.status() == 200
        assert sandbox.limiter.tracked_tokens() == 1
        second = MerchantClient(http, sandbox, sandbox.merchant_ids[0])
        assert await second.status() == 200
        assert sandbox.limiter.tracked_tokens() == 2
        clock.advance(1.5)
        assert await second.status() == 200
    assert sandbox.limiter.tracked_tokens() == 1
