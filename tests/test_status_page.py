"""The status page: real Redis behind it, real HTTP, and a real Chromium looking."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from lockerlink.embedded import free_port
from lockerlink.keys import KeySpace
from lockerlink.registry import StoreRegistry
from lockerlink.status import StatusBoard
from lockerlink.status_page import TokenState, make_status_app

ADMIN = "admin-credential-for-tests-only"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

REGISTRY = StoreRegistry.from_mapping(
    {
        "stores": [
            {
                "store_id": "downtown",
                "name": "Downtown",
                "merchant_ids": ["MDOWNTOWN001"],
            },
            {
                "store_id": "airport",
                "name": "Airport",
                "merchant_ids": ["MAIRPORT0001"],
            },
        ]
    }
)


async def _token_states() -> dict[str, TokenState]:
    now_ms = int(time.time() * 1000)
    return {
        "MDOWNTOWN001": TokenState(
            "MDOWNTOWN001", "connected", now_ms + 1_500_000, None
        ),
        "MAIRPORT0001": TokenState("MAIRPORT0001", "reauth_required", None, None),
    }


@pytest.fixture
async def status_url(
    redis: aioredis.Redis, keyspace: KeySpace
) -> AsyncIterator[tuple[str, StatusBoard]]:
    board = StatusBoard(redis, keyspace)
    app = make_status_app(board, REGISTRY, ADMIN, _token_states)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", board
    finally:
        await runner.cleanup()


async def _fill(board: StatusBoard) -> None:
    now_ms = int(time.time() * 1000)
    await board.record_poll("MDOWNTOWN001", now_ms - 4_000)
    for minutes_ago in (30, 20, 10, 0):
        at_ms = now_ms - minutes_ago * 60_000
        for latency_ms in (120, 180, 240, 900):
            await board.record_delivery("downtown", latency_ms, at_ms=at_ms)
    await board.record_breaker("airport", "open")
    await board.record_lag("airport", 42)
    await board.record_dead_letter("airport")


async def test_board_reports_latency_quantiles_per_minute(
    redis: aioredis.Redis, keyspace: KeySpace
) -> None:
    board = StatusBoard(redis, keyspace)
    now_ms = 1_800_000_000_000
    for latency_ms in [80] * 60 + [400] * 39 + [25_000]:
        await board.record_delivery("s1", latency_ms, at_ms=now_ms)
    read = await board.read(minutes=5, now_ms=now_ms)
    [minute] = read.latency
    assert minute.count == 100
    assert minute.p50_ms == 100  # bucket bound holding the 50th sample
    assert minute.p99_ms == 500
    [store] = read.stores
    assert (store.store_id, store.delivered) == ("s1", 100)


async def test_page_requires_the_admin_credential(
    status_url: tuple[str, StatusBoard],
) -> None:
    url, _ = status_url
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 401
            assert "admin credential" in (await response.json())["message"]
        wrong = {"Authorization": aiohttp.encode_basic_auth("ops", "guess")}
        async with http.get(url, headers=wrong) as response:
            assert response.status == 401
        garbage = {"Authorization": "Basic !!!not-base64"}
        async with http.get(url, headers=garbage) as response:
            assert response.status == 401


async def test_api_lists_every_store_with_its_state(
    status_url: tuple[str, StatusBoard],
) -> None:
    url, board = status_url
    await _fill(board)
    admin = {"Authorization": aiohttp.encode_basic_auth("ops", ADMIN)}
    async with (
        aiohttp.ClientSession(headers=admin) as http,
        http.get(f"{url}/api/status") as response,
    ):
        assert response.status == 200
        data = await response.json()
    stores = {row["store_id"]: row for row in data["stores"]}
    assert stores["downtown"]["delivered"] == 16
    assert stores["downtown"]["token_state"] == "connected"
    assert 0 <= stores["downtown"]["last_poll_age_s"] <= 60
    assert stores["airport"]["breaker"] == "open"
    assert stores["airport"]["token_state"] == "reauth_required"
    assert stores["airport"]["dead_letters"] == 1
    assert len(data["latency"]) == 4


def _chromium() -> str | None:
    found = shutil.which("chromium")
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("chromium is missing in CI: .ci/run must install it")
    return found


async def test_page_renders_in_chromium_with_real_data(
    status_url: tuple[str, StatusBoard],
) -> None:
    executable = _chromium()
    if executable is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.async_api import async_playwright

    url, board = status_url
    await _fill(board)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=executable, args=["--no-sandbox"]
        )
        try:
            context = await browser.new_context(
                http_credentials={"username": "ops", "password": ADMIN}
            )
            page = await context.new_page()
            await page.goto(url)
            assert await page.title() == "lockerlink status"
            rows = page.locator("#stores tr[data-store]")
            assert await rows.count() == 2
            airport = page.locator('tr[data-store="airport"]')
            assert "reauth_required" in await airport.inner_text()
            assert await airport.get_attribute("class") == "breaker-open"
            chart = page.locator("#latency-chart")
            box = await chart.bounding_box()
            assert box is not None and box["width"] > 100
            points = await page.locator("#latency-chart polyline.p99").get_attribute(
                "points"
            )
            assert points is not None and len(points.split()) == 4
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(
                path=str(ARTIFACTS / "status-page.png"), full_page=True
            )
        finally:
            await browser.close()
