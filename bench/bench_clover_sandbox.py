"""How many pages of orders the Clover sandbox serves per second.

The sandbox runs in its own process with its limits lifted; a keep-alive aiohttp
client asks for one page of 100 expanded orders over and over. The baseline, in
the same run, is a bare aiohttp server in its own process answering the very same
bytes, so the ratio is what the sandbox's own work costs.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from tempfile import TemporaryDirectory

import aiohttp
from aiohttp import web

from bench.report import Section
from lockerlink.embedded import free_port
from sandbox.clover import CloverSandbox
from sandbox.clover_config import CloverConfig
from sandbox.clover_limits import RateLimits

MERCHANT = "BENCHMERCHANT"
ORDERS = 100
WORKERS = 8
ROUND_S = 2.0
ROUNDS = 5
PAGE_QUERY = (
    "expand=lineItems,lineItems.modifications,orderType"
    "&filter=modifiedTime>=0&orderBy=modifiedTime%20ASC&limit=100"
)


def _serve_sandbox(port: int, ready: EventType) -> None:
    async def serve() -> None:
        config = CloverConfig(merchant_ids=(MERCHANT,), limits=RateLimits.lifted())
        sandbox = CloverSandbox(config)
        for _ in range(ORDERS):
            sandbox.generator.new_order(MERCHANT)
        await sandbox.start("127.0.0.1", port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(serve())


def _serve_bytes(port: int, body_path: str, ready: EventType) -> None:
    body = Path(body_path).read_bytes()

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def serve() -> None:
        app = web.Application()
        app.router.add_get(f"/v3/merchants/{MERCHANT}/orders", page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(serve())


def _start(
    target: Callable[..., None], *args: object
) -> multiprocessing.process.BaseProcess:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    process = context.Process(target=target, args=(*args, ready), daemon=True)
    process.start()
    if not ready.wait(timeout=60):
        process.terminate()
        raise RuntimeError("benchmark server did not start")
    return process


async def _requests_per_s(url: str, headers: dict[str, str]) -> float:
    done = 0
    deadline = time.perf_counter() + ROUND_S

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with http.get(url, headers=headers) as reply:
                await reply.read()
                if reply.status != 200:
                    raise RuntimeError(f"benchmark request failed: {reply.status}")
            done += 1

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=WORKERS)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(worker(http) for _ in range(WORKERS)))
    return done / (time.perf_counter() - started)


async def _paired_round(
    urls: tuple[str, str], headers: dict[str, str], round_no: int
) -> tuple[float, float]:
    """Requests per second of the baseline and of the sandbox, back to back."""
    bare_url, sandbox_url = urls
    if round_no % 2:
        served = await _requests_per_s(sandbox_url, headers)
        return await _requests_per_s(bare_url, headers), served
    bare = await _requests_per_s(bare_url, headers)
    return bare, await _requests_per_s(sandbox_url, headers)


async def _page_and_token(base_url: str) -> tuple[bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as http:
        connect = f"{base_url}/_sandbox/merchants/{MERCHANT}/connect"
        async with http.post(connect) as reply:
            access = (await reply.json())["access_token"]
        headers = {"Authorization": f"Bearer {access}"}
        url = f"{base_url}/v3/merchants/{MERCHANT}/orders?{PAGE_QUERY}"
        async with http.get(url, headers=headers) as reply:
            return await reply.read(), headers


async def run() -> Section:
    section = Section(
        "clover_sandbox",
        "Clover sandbox: pages of orders served per second",
        ".venv/bin/python -m bench clover_sandbox",
    )
    sandbox_port, bare_port = free_port(), free_port()
    sandbox_process = _start(_serve_sandbox, sandbox_port)
    with TemporaryDirectory() as scratch:
        try:
            base = f"http://127.0.0.1:{sandbox_port}"
            body, headers = await _page_and_token(base)
            body_path = Path(scratch) / "page.json"
            body_path.write_bytes(body)
            bare_process = _start(_serve_bytes, bare_port, str(body_path))
            path = f"/v3/merchants/{MERCHANT}/orders?{PAGE_QUERY}"
            urls = (f"http://127.0.0.1:{bare_port}{path}", f"{base}{path}")
            pairs = [await _paired_round(urls, headers, n) for n in range(ROUNDS)]
        finally:
            sandbox_process.terminate()
            if "bare_process" in locals():
                bare_process.terminate()
    bare = statistics.median(b for b, _ in pairs)
    served = statistics.median(s for _, s in pairs)
    ratio = statistics.median(s / b for b, s in pairs)
    what = (
        f"GET a page of {ORDERS} expanded orders ({len(body):,} B), "
        f"{WORKERS} keep-alive connections"
    )
    section.add(f"bare aiohttp, same bytes: {what}", f"{bare:,.0f} req/s", "baseline")
    section.add(
        f"Clover sandbox, limits lifted: {what}",
        f"{served:,.0f} req/s",
        f"{ratio:.2f} x",
    )
    section.notes.append(
        f"Medians of {ROUNDS} paired rounds of {ROUND_S:.0f} s (baseline and sandbox "
        "back to back, order alternating); the ratio is the median of per-round "
        "ratios. Servers in their own processes, client in the benchmark process, "
        f"2 shared cores, load average {os.getloadavg()[0]:.1f} at the end."
    )
    return section
