"""`lockerlink stream` logs in lockerlink's format, not Faust's."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from lockerlink.embedded import free_port

pytestmark = pytest.mark.timeout(90)

WAIT_S = 60.0


def _json_line(line: bytes) -> dict[str, object] | None:
    try:
        found = json.loads(line)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


async def test_stream_process_writes_json_lines_for_faust_and_its_own_logs(
    kafka_bootstrap: str,
    redis_url: str,
    tmp_path: Path,
    unique_name: Callable[[str], str],
) -> None:
    env = {
        "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LOCKERLINK_REDIS_URL": redis_url,
        "LOCKERLINK_DATA_DIR": str(tmp_path / "data"),
        "LOCKERLINK_REDIS_KEY_PREFIX": unique_name("logs"),
        "LOCKERLINK_STREAM_OPS_PORT": str(free_port()),
        "LOCKERLINK_LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "lockerlink", "stream"],
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[bytes] = []
    try:
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while asyncio.get_running_loop().time() < deadline:
            line = await asyncio.wait_for(process.stderr.readline(), WAIT_S)
            if not line:
                break
            lines.append(line)
            found = _json_line(line)
            if found is not None and str(found.get("logger", "")).startswith("faust"):
                break
    finally:
        process.terminate()
        await process.wait()
    parsed = [_json_line(line) for line in lines if line.strip()]
    assert parsed and all(p is not None for p in parsed), lines[:5]
    loggers = {str(p["logger"]) for p in parsed if p is not None}
    assert any(name.startswith("faust") for name in loggers), loggers
    assert all({"ts", "level", "message"} <= set(p) for p in parsed if p is not None)
