"""The Clover sandbox's own control endpoints, for a sandbox run from the CLI."""

from __future__ import annotations

import asyncio

import aiohttp

from sandbox.clover import CloverSandbox
from sandbox.clover_config import CloverConfig
from sandbox.order_generator import GeneratorConfig
from tests.clover_client import MerchantClient
from tests.sandboxes import SandboxFactory


async def test_admin_endpoints_add_connect_and_report(
    clover_sandbox: CloverSandbox,
) -> None:
    admin = f"{clover_sandbox.base_url}/_sandbox"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{admin}/merchants") as added:
            merchant = (await added.json())["merchant_id"]
        async with http.post(f"{admin}/merchants/{merchant}/connect") as connected:
            pair = await connected.json()
        async with http.post(f"{admin}/merchants/NOSUCHMERCHNT/connect") as unknown:
            assert unknown.status == 404
        made = clover_sandbox.generator.new_order(merchant)
        client = MerchantClient(http, clover_sandbox, merchant)
        client.headers = {"Authorization": f"Bearer {pair['access_token']}"}
        status, listing, _ = await client.get("/orders", {"expand": "payments"})
        async with http.get(f"{admin}/calls") as calls:
            rows = (await calls.json())["elements"]
        async with http.get(f"{admin}/orders", params={"merchant_id": merchant}) as o:
            versions = (await o.json())["elements"]
        async with http.post(f"{admin}/merchants/{merchant}/uninstall") as removed:
            assert removed.status == 200
        assert await client.status() == 401
    assert status == 200 and listing["elements"][0]["id"] == made.order_id
    assert {
        "endpoint": "orders.list",
        "outcome": "ok",
        "merchant_id": merchant,
        "count": 1,
    } in rows
    assert [(v["order_id"], v["kind"]) for v in versions] == [(made.order_id, "CREATE")]


async def test_paused_generator_writes_nothing_until_resumed(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    config = CloverConfig(
        merchant_ids=("GENPAUSEMERCH1",),
        generator=GeneratorConfig(orders_per_s=40.0, tick_s=0.02),
    )
    sandbox = await clover_sandbox_factory(config)
    generator = f"{sandbox.base_url}/_sandbox/generator"
    async with aiohttp.ClientSession() as http:
        async with http.put(generator, json={"paused": "yes"}) as wrong:
            assert wrong.status == 400
        async with http.put(generator, json={"paused": True}) as paused:
            assert (await paused.json())["paused"] is True
        # One generator tick may have been mid-write when the pause arrived.
        await asyncio.sleep(0.1)
        written = asyncio.Event()
        sandbox.orders.on_change(lambda *_: written.set())
        await asyncio.sleep(0.3)
        assert not written.is_set()
        async with http.put(generator, json={"paused": False}) as resumed:
            assert resumed.status == 200
        await written.wait()


async def test_generator_pace_changes_without_a_restart(
    clover_sandbox_factory: SandboxFactory,
) -> None:
    config = CloverConfig(
        merchant_ids=("GENPACEMERCH1",),
        generator=GeneratorConfig(orders_per_s=1.0, tick_s=0.02),
    )
    sandbox = await clover_sandbox_factory(config)
    generator = f"{sandbox.base_url}/_sandbox/generator"
    async with aiohttp.ClientSession() as http:
        async with http.put(generator, json={"orders_per_s": 0}) as wrong:
            assert wrong.status == 400
        async with http.put(generator, json={}) as empty:
            assert empty.status == 400
        async with http.put(generator, json={"orders_per_s": 50.0}) as faster:
            assert await faster.json() == {"paused": False, "orders_per_s": 50.0}
    assert sandbox.generator.config.orders_per_s == 50.0
