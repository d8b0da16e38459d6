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


async def test_a_component_reports_its_own_metric_families_only() -> None:
    # Every component's metrics live in this process, as in a real one.
    import consumers.metrics  # noqa: F401
    import streams.app  # noqa: F401
    import token_service.metrics  # noqa: F401

    server = OpsServer("stream", "127.0.0.1", 0)
    await server.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{server.port}/metrics") as response,
        ):
            families = {
                line.split()[2]
                for line in (await response.text()).splitlines()
                if line.startswith("# TYPE ")
            }
    finally:
        await server.stop()
    ours = {f for f in families if f.startswith("lockerlink_")}
    assert "lockerlink_stream_records_total" in ours
    assert ours and all(f.startswith("lockerlink_stream_") for f in ours), ours
    assert any(f.startswith("process_") for f in families)  # the process's own


async def test_the_status_page_lists_no_lockerlink_families_of_others() -> None:
    import consumers.metrics  # noqa: F401
    import token_service.metrics  # noqa: F401

    server = OpsServer("status-page", "127.0.0.1", 0)
    await server.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{server.port}/metrics") as response,
        ):
            text = await response.text()
    finally:
        await server.stop()
    assert "lockerlink_" not in text
    assert "process_resident_memory_bytes" in text
