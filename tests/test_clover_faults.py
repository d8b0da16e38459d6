"""Faults injected into the Clover sandbox, from code and from the admin endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from sandbox.clover import CloverSandbox
from sandbox.clover_config import CloverConfig
from tests.clover_client import MerchantClient
from tests.sandboxes import ManualClock, SandboxFactory


async def _refresh_status(
    http: aiohttp.ClientSession, sandbox: CloverSandbox, token: str
) -> int:
    body = {"client_id": sandbox.config.app_id, "refresh_token": token}
    async with http.post(f"{sandbox.base_url}/oauth/v2/refresh", json=body) as reply:
        return reply.status


async def test_error_outage_hits_only_the_chosen_endpoint_for_n_requests(
    clover_sandbox: CloverSandbox,
) -> None:
    pair = clover_sandbox.connect_merchant(clover_sandbox.merchant_ids[0])
    clover_sandbox.faults.outage(status=502, requests=2, endpoints=["refresh"])
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, clover_sandbox.merchant_ids[0])
        rest = await client.status()
        failed = [await _refresh_status(http, clover_sandbox, "x") for _ in range(2)]
        after = await _refresh_status(http, clover_sandbox, pair["refresh_token"])
    assert rest == 200
    assert failed == [502, 502]
    assert after == 200
    assert clover_sandbox.calls.count("refresh", outcome="fault") == 2


async def test_outage_window_ends_with_its_duration(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    clock = ManualClock()
    sandbox = await clover_sandbox_factory(CloverConfig(), clock=clock)
    sandbox.faults.outage(duration_s=30)
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, sandbox, sandbox.merchant_ids[0])
        during = await client.status()
        clock.advance(30)
        after = await client.status()
    assert (during, after) == (503, 200)


async def test_reset_outage_drops_the_connection(clover_sandbox: CloverSandbox) -> None:
    # aiohttp's client retries an idempotent request once on a dropped connection.
    clover_sandbox.faults.outage("reset", requests=2)
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, clover_sandbox.merchant_ids[0])
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.get("/orders")
        assert await client.status() == 200


async def test_hanging_requests_wait_until_faults_are_cleared(
    clover_sandbox: CloverSandbox,
) -> None:
    clover_sandbox.faults.outage("hang")
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, clover_sandbox.merchant_ids[0])
        hung = asyncio.create_task(client.status())
        while clover_sandbox.faults.hanging < 1:  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(0.005)
        assert not hung.done()
        clover_sandbox.faults.clear()
        assert await hung == 503
        assert await client.status() == 200


async def test_hanging_callers_are_named_over_http(
    clover_sandbox: CloverSandbox,
) -> None:
    pair = clover_sandbox.connect_merchant(clover_sandbox.merchant_ids[0])
    clover_sandbox.faults.outage(
        "hang", requests=1, endpoints=["refresh"], after_serving=True
    )
    faults_url = f"{clover_sandbox.base_url}/_sandbox/faults"
    async with aiohttp.ClientSession() as http:
        held = asyncio.create_task(
            _refresh_status(http, clover_sandbox, pair["refresh_token"])
        )
        while clover_sandbox.faults.hanging < 1:  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(0.005)
        async with http.get(faults_url) as in_flight:
            report = await in_flight.json()
        clover_sandbox.faults.clear()
        await held
    assert report["hanging"] == 1
    assert report["callers"][0][0] == "127.0.0.1"
    assert report["callers"][0][1] > 0


async def test_storm_answers_429_with_a_limit_header(
    clover_sandbox: CloverSandbox,
) -> None:
    clover_sandbox.faults.storm(retry_after_s=7, requests=1)
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, clover_sandbox.merchant_ids[0])
        status, _, headers = await client.get("/orders")
        after = await client.status()
    assert status == 429
    assert headers["Retry-After"] == "7"
    assert headers["X-RateLimit-crossTokenLimit"] == "50"
    assert after == 200


async def test_rejecting_access_tokens_and_revoking_a_merchant(
    clover_sandbox: CloverSandbox,
) -> None:
    merchant = clover_sandbox.merchant_ids[0]
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, merchant)
        clover_sandbox.faults.reject_access_tokens()
        rejected = await client.status()
        clover_sandbox.faults.clear()
        accepted = await client.status()
        pair = clover_sandbox.connect_merchant(merchant)
        clover_sandbox.faults.revoke(merchant)
        revoked = await _refresh_status(http, clover_sandbox, pair["refresh_token"])
    assert (rejected, accepted, revoked) == (401, 200, 401)


async def test_expiring_access_tokens_ends_only_those_issued_so_far(
    clover_sandbox: CloverSandbox,
) -> None:
    merchant = clover_sandbox.merchant_ids[0]
    faults_url = f"{clover_sandbox.base_url}/_sandbox/faults"
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, merchant)
        async with http.put(faults_url, json={"expire_access_tokens": True}):
            pass
        expired = await client.status()
        fresh = MerchantClient(http, clover_sandbox, merchant)
        renewed = await fresh.status()
    assert (expired, renewed) == (401, 200)
    assert clover_sandbox.calls.count("orders.list", outcome="expired") == 1


async def test_admin_endpoint_adds_and_clears_faults(
    clover_sandbox: CloverSandbox,
) -> None:
    faults_url = f"{clover_sandbox.base_url}/_sandbox/faults"
    spec: dict[str, Any] = {"outage": {"status": 500, "endpoints": ["orders.list"]}}
    async with aiohttp.ClientSession() as http:
        client = MerchantClient(http, clover_sandbox, clover_sandbox.merchant_ids[0])
        async with http.put(faults_url, json=spec) as added:
            assert added.status == 200
        during = await client.status()
        async with http.delete(faults_url) as cleared:
            assert cleared.status == 200
        after = await client.status()
        async with http.put(faults_url, json={"outage": {"kind": "fire"}}) as bad:
            bad_body = await bad.json()
    assert (during, after) == (500, 200)
    assert bad.status == 400 and "outage.kind" in bad_body["message"]
