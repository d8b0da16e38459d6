"""`lockerlink dev up` starts the embedded stack, refuses a twin, and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockerlink.broker import ensure_topics
from lockerlink.embedded import free_port, port_answers, wait_for_port
from schemas.topics import CORE_TOPICS


def _spawn(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lockerlink", "dev", "up", "--no-demo"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(process: subprocess.Popen[str], marker: str) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip())
        if marker in line:
            return lines
    raise AssertionError(f"no {marker!r} in output: {lines}")


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    token_port = free_port()
    return {
        "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "LOCKERLINK_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "LOCKERLINK_DATA_DIR": str(tmp_path / "data"),
        "LOCKERLINK_STATUS_PAGE_PORT": str(free_port()),
        # every service `dev up` runs gets a port no other test uses
        "LOCKERLINK_POLLER_WEBHOOK_PORT": str(free_port()),
        "LOCKERLINK_TOKEN_SERVICE_PORT": str(token_port),
        "LOCKERLINK_TOKEN_SERVICE_URL": f"https://127.0.0.1:{token_port}",
        "LOCKERLINK_REDIS_KEY_PREFIX": f"devstack-{token_port}",
    }


@pytest.fixture
def running_stack(stack_env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = _spawn(stack_env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # stops its children too
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def test_dev_up_serves_broker_and_redis_then_stops_on_ctrl_c(
    running_stack: subprocess.Popen[str], stack_env: dict[str, str]
) -> None:
    output = _read_until(running_stack, "ready")
    bootstrap = stack_env["LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS"]
    assert any("embedded Tansu broker" in line and bootstrap in line for line in output)
    assert any("embedded Valkey" in line for line in output)
    # the core topics exist: creating them again creates nothing
    assert await ensure_topics(bootstrap, CORE_TOPICS, 1) == []
    broker_port = int(bootstrap.rsplit(":", 1)[1])
    redis_port = int(stack_env["LOCKERLINK_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    status_port = int(stack_env["LOCKERLINK_STATUS_PAGE_PORT"])
    wait_for_port("127.0.0.1", status_port, 30, "status page service")

    running_stack.send_signal(signal.SIGINT)
    assert running_stack.wait(timeout=15) == 0
    for port in (broker_port, redis_port, status_port):
        assert not port_answers("127.0.0.1", port), f"port {port} still served"
    aof_dir = Path(stack_env["LOCKERLINK_DATA_DIR"]) / "valkey"
    assert any(aof_dir.rglob("*.aof")), "Valkey ran without its append-only file"


def test_second_dev_up_on_the_same_data_dir_says_one_is_running(
    running_stack: subprocess.Popen[str], stack_env: dict[str, str]
) -> None:
    _read_until(running_stack, "ready")
    twin = subprocess.run(
        [sys.executable, "-m", "lockerlink", "dev", "up", "--no-demo"],
        env={**os.environ, **stack_env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert twin.returncode == 2
    assert "already running" in twin.stderr
    assert f"pid {running_stack.pid}" in twin.stderr
