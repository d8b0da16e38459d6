"""Every server command meets a taken port with one clear line and exit code 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize(
    ("command", "port_variable", "what"),
    [
        (["sandbox", "locker", "--port", "{port}"], None, "locker sandbox"),
        (["sandbox", "clover", "--port", "{port}"], None, "Clover sandbox"),
        (["status-page"], "LOCKERLINK_STATUS_PAGE_PORT", "status page"),
        (["token-service"], "LOCKERLINK_TOKEN_SERVICE_PORT", "token service"),
    ],
)
def test_a_taken_port_is_one_line_and_exit_code_2(
    command: list[str],
    port_variable: str | None,
    what: str,
    taken_port: int,
    tmp_path: Path,
) -> None:
    env = {**os.environ, "LOCKERLINK_DATA_DIR": str(tmp_path)}
    if port_variable is not None:
        env[port_variable] = str(taken_port)
    arguments = [part.format(port=taken_port) for part in command]
    finished = subprocess.run(
        [sys.executable, "-m", "lockerlink", *arguments],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2
    assert "Traceback" not in finished.stderr
    assert "Unclosed" not in finished.stderr
    expected = (
        f"lockerlink: {what} cannot listen on 127.0.0.1:{taken_port}: "
        "the address is already in use"
    )
    assert expected in finished.stderr.splitlines()
