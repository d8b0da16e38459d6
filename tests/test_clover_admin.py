"""The Clover sandbox's own control endpoints, for a sandbox run from the CLI."""

from __future__ import annotations

import aiohttp

from sandbox.clover import CloverSandbox
from tests.clover_client import MerchantClient


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
