"""Health, readiness and metrics endpoints over real HTTP."""

from __future__ import annotations

import aiohttp
from prometheus_client import Counter

from lockerlink.ops_http import OpsServer

_PROBE = Counter("lockerlink_test_probe_total", "Counts test probes.")


async def test_ops_server_reports_health_readiness_and_metrics() -> None:
    ready = False

    async def is_ready() -> bool:
        return ready

    server = OpsServer("test", "127.0.0.1", 0, is_ready)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    _PROBE.inc()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 503
            ready = True
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 200
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert "lockerlink_test_probe_total 1.0" in await response.text()
    finally:
        await server.stop()
