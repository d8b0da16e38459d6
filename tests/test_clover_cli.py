"""`lockerlink sandbox clover` serves a working Clover and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from pathlib import Path

import aiohttp
import pytest

from lockerlink.embedded import free_port
from sandbox.clover_cli import merchant_ids


def test_merchants_option_takes_a_count_or_ids() -> None:
    assert merchant_ids("2") == ("LLSANDBOX0001", "LLSANDBOX0002")
    assert merchant_ids("AAAAAAAAAAAA1, BBBBBBBBBBBB2") == (
        "AAAAAAAAAAAA1",
        "BBBBBBBBBBBB2",
    )


async def _first_orders(base_url: str, merchant: str) -> list[object]:
    async with aiohttp.ClientSession() as http:
        connect_url = f"{base_url}/_sandbox/merchants/{merchant}/connect"
        async with http.post(connect_url) as reply:
            access = (await reply.json())["access_token"]
        while True:
            async with http.get(
                f"{base_url}/v3/merchants/{merchant}/orders",
                headers={"Authorization": f"Bearer {access}"},
            ) as reply:
                orders: list[object] = (await reply.json())["elements"]
            if orders:
                return orders


@pytest.mark.timeout(60)
async def test_cli_serves_generated_orders_and_keeps_the_secret_off_the_screen(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {**os.environ, "LOCKERLINK_DATA_DIR": str(tmp_path)}
    env.pop("LOCKERLINK_CLOVER_APP_SECRET", None)
    options = ["--port", str(port), "--merchants", "2", "--rate", "50", "--no-limits"]
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "lockerlink", "sandbox", "clover", *options],
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        while not lines or not lines[-1].startswith("merchants:"):
            lines.append((await process.stderr.readline()).decode())
            assert lines[-1], "the sandbox exited before listening"
        orders = await _first_orders(f"http://127.0.0.1:{port}", "LLSANDBOX0002")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    secret_file = tmp_path / "secrets" / "clover-app-secret"
    secret = secret_file.read_text().strip()
    assert orders
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret not in "".join(lines)
    assert any(str(secret_file) in line for line in lines)
