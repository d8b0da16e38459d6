"""`make run`: the whole pipeline on embedded defaults delivers orders to lockers."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from lockerlink.demo import DEMO_STORES
from lockerlink.embedded import free_port, port_answers

ORDER_LINE = re.compile(
    r"^order\s+(?P<store>\S+)\s+(?P<event>created|updated|cancelled)\s+"
    r"(?P<channel>in_store|delivery)\s+(?P<platform>\S+)\s+.*PIN (?P<pin>[0-9A-Z]+)\s+"
    r"e2e (?P<seconds>-?[0-9.]+) s$"
)
OPS_PORTS = (
    "LOCKERLINK_POLLER_OPS_PORT",
    "LOCKERLINK_STREAM_OPS_PORT",
    "LOCKERLINK_DELIVERY_OPS_PORT",
)


def _ready(port: int) -> bool:
    """Whether the service's /readyz answers 200 (urllib raises on anything else)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
        return bool(r.status == 200)


def _free_block(count: int) -> int:
    """A base port whose next ``count`` ports are all free right now."""
    for _ in range(100):
        base = free_port()
        ports = range(base + 1, base + count + 1)
        if all(port < 65536 and _bindable(port) for port in ports):
            return base
    raise AssertionError(f"no block of {count} free ports")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _demo_env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    token_port, clover_port = free_port(), free_port()
    lockers = _free_block(len(DEMO_STORES))  # store N listens on this + N
    return {
        "LOCKERLINK_DATA_DIR": str(tmp_path / "data"),
        "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "LOCKERLINK_REDIS_URL": redis_url,
        "LOCKERLINK_REDIS_KEY_PREFIX": f"demo-{uuid.uuid4().hex[:8]}",
        "LOCKERLINK_CLOVER_API_BASE_URL": f"http://127.0.0.1:{clover_port}",
        "LOCKERLINK_CLOVER_AUTHORIZE_BASE_URL": f"http://127.0.0.1:{clover_port}",
        "LOCKERLINK_TOKEN_SERVICE_PORT": str(token_port),
        "LOCKERLINK_TOKEN_SERVICE_URL": f"https://127.0.0.1:{token_port}",
        "LOCKERLINK_POLLER_WEBHOOK_PORT": str(free_port()),
        "LOCKERLINK_STATUS_PAGE_PORT": str(free_port()),
        "LOCKERLINK_DEMO_LOCKER_BASE_PORT": str(lockers),
        "LOCKERLINK_DEMO_ORDERS_PER_S": "1.0",
        "LOCKERLINK_POLLER_INTERVAL_S": "1.0",
        **{name: str(free_port()) for name in OPS_PORTS},
    }


@pytest.mark.timeout(300)
def test_make_run_delivers_orders_to_lockers_and_stops_cleanly(
    tmp_path: Path, redis_url: str
) -> None:
    env = _demo_env(tmp_path, redis_url)
    process = subprocess.Popen(
        [sys.executable, "-m", "lockerlink", "dev", "up"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    orders: list[re.Match[str]] = []
    output: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip())
            match = ORDER_LINE.match(line.strip())
            if match:
                orders.append(match)
            enough = len({m["store"] for m in orders}) >= 3 and any(
                m["channel"] == "delivery" for m in orders
            )
            if enough or line.startswith("stopping"):
                break
        stores = {m["store"] for m in orders}
        assert len(stores) >= 3, "\n".join(output)
        assert all(m["channel"] in ("in_store", "delivery") for m in orders)
        # The generator mixes platform orders in; they reach lockers as deliveries.
        platforms = {m["platform"] for m in orders if m["channel"] == "delivery"}
        assert platforms and "-" not in platforms, "\n".join(output)
        status_url = f"http://127.0.0.1:{env['LOCKERLINK_STATUS_PAGE_PORT']}/"
        assert any(line.startswith(f"status  {status_url}") for line in output)
        assert sum(line.startswith("store ") for line in output) == 5
        # Orders reached lockers, so every service behind them says it is ready.
        assert all(_ready(int(env[name])) for name in OPS_PORTS)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    assert code == 0
    status_port = int(env["LOCKERLINK_STATUS_PAGE_PORT"])
    assert not port_answers("127.0.0.1", status_port)
