"""`lockerlink dev up`: the whole system on one machine, no Docker.

Starts the embedded broker unless the configured one answers, Redis unless the
configured one answers, creates the core topics, then runs every lockerlink service
as a child process until Ctrl-C or SIGTERM, and stops all of it within 5 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lockerlink.broker import ensure_topics
from lockerlink.embedded import (
    EmbeddedBroker,
    EmbeddedRedis,
    die_with_parent,
    port_answers,
)
from lockerlink.errors import ConfigError
from lockerlink.redis_store import redis_answers
from lockerlink.settings import Settings
from schemas.topics import CORE_TOPICS

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 4.0


@dataclass(frozen=True)
class Service:
    """A long-running lockerlink process `dev up` starts."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


# Every long-running service `dev up` runs, in start order. Components append to it
# from `lockerlink.cli` when they exist.
SERVICES: list[Service] = [Service("status-page", ("status-page",))]


class AlreadyRunning(ConfigError):
    """Another `dev up` holds the data directory."""


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the life of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise AlreadyRunning(
                f"lockerlink dev up is already running (pid {holder}) "
                f"with data directory {path.parent}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.split(",")[0].strip().rpartition(":")
    return host, int(port)


def _redis_host_port(url: str) -> tuple[str, int]:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379


class DevStack:
    """The embedded servers and lockerlink services of one `dev up`."""

    def __init__(self, settings: Settings, out: IO[str] = sys.stdout) -> None:
        self.settings = settings
        self.out = out
        self.data_dir = settings.data_dir.resolve()
        self.broker: EmbeddedBroker | None = None
        self.redis: EmbeddedRedis | None = None
        self.children: list[tuple[Service, subprocess.Popen[bytes]]] = []
        self.bootstrap_servers = settings.kafka_bootstrap_servers
        self.redis_url = settings.redis_url
        self.extra_env: dict[str, str] = {}

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    async def start_servers(self) -> None:
        host, port = _host_port(self.settings.kafka_bootstrap_servers)
        if port_answers(host, port):
            self.say(f"kafka   using the broker at {self.bootstrap_servers}")
        else:
            self.broker = EmbeddedBroker(host, port, self.data_dir / "logs/tansu.log")
            self.broker.start()
            self.say(f"kafka   embedded Tansu broker on {self.bootstrap_servers}")

        if await redis_answers(self.settings.redis_url):
            self.say(f"redis   using {self.redis_url}")
        else:
            rhost, rport = _redis_host_port(self.settings.redis_url)
            self.redis = EmbeddedRedis(
                rhost,
                rport,
                self.data_dir / "valkey",
                self.data_dir / "logs/valkey.log",
            )
            self.redis.start()
            self.redis_url = self.redis.url
            self.say(f"redis   embedded Valkey on {self.redis_url} (append-only)")

        created = await ensure_topics(
            self.bootstrap_servers, CORE_TOPICS, self.settings.kafka_topic_partitions
        )
        for name in created:
            self.say(f"topic   created {name}")

    def service_env(self) -> dict[str, str]:
        """The environment every child service starts with."""
        return {
            **os.environ,
            "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "LOCKERLINK_REDIS_URL": self.redis_url,
            "LOCKERLINK_DATA_DIR": str(self.data_dir),
            **self.extra_env,
        }

    def start_service(self, service: Service) -> subprocess.Popen[bytes]:
        """Start one service; its output goes to ``logs/<name>.log``."""
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / f"{service.name}.log").open("ab") as log_file:
            process = subprocess.Popen(  # noqa: S603 - our own console script
                [sys.executable, "-m", "lockerlink", *service.argv],
                env={**self.service_env(), **service.env},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
                # Ctrl-C reaches the whole terminal process group; services get
                # their own so that `dev up` alone decides the order they stop in.
                start_new_session=True,
            )
        self.children = [(s, p) for s, p in self.children if s.name != service.name]
        self.children.append((service, process))
        return process

    def start_services(self, services: list[Service]) -> None:
        if not services:
            self.say("services none registered yet")
        for service in services:
            process = self.start_service(service)
            self.say(
                f"service {service.name} started (pid {process.pid}, "
                f"log {self.data_dir / 'logs' / service.name}.log)"
            )

    def process_of(self, name: str) -> subprocess.Popen[bytes]:
        for service, process in self.children:
            if service.name == name:
                return process
        raise KeyError(name)

    def kill_service(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one service and wait for it to end (SIGKILL: as a crash would)."""
        process = self.process_of(name)
        if process.poll() is None:
            process.send_signal(sig)
            process.wait(timeout=STOP_TIMEOUT_S + 1)

    def restart_service(self, name: str) -> subprocess.Popen[bytes]:
        for service, _ in self.children:
            if service.name == name:
                return self.start_service(service)
        raise KeyError(name)

    def exited_child(self) -> tuple[Service, int] | None:
        for service, process in self.children:
            code = process.poll()
            if code is not None:
                return service, code
        return None

    def stop(self) -> None:
        """Stop services, then servers; nothing is left running afterwards."""
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for _, process in self.children:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in self.children:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.children.clear()
        if self.redis is not None:
            self.redis.stop(timeout_s=0.5)
        if self.broker is not None:
            self.broker.stop(timeout_s=0.5)


async def _wait_for_stop(
    stack: DevStack, side_work: Callable[[], Coroutine[Any, Any, None]] | None = None
) -> tuple[str, bool]:
    """Wait for Ctrl-C, SIGTERM or a service dying; returns (reason, clean)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    reason = "stopped"

    def on_signal(name: str) -> None:
        nonlocal reason
        reason = f"{name} received"
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)
    side = asyncio.create_task(side_work()) if side_work is not None else None
    try:
        while not stopping.is_set():
            exited = stack.exited_child()
            if exited is not None:
                service, code = exited
                log_path = stack.data_dir / "logs" / f"{service.name}.log"
                return (
                    f"service {service.name} exited with code {code}; see {log_path}",
                    False,
                )
            if side is not None and side.done() and not side.cancelled():
                error = side.exception()
                if error is not None:
                    return f"demo set-up failed: {error!r}", False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=0.5)
        return reason, True
    finally:
        if side is not None:
            side.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await side
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _ops_line(settings: Settings) -> str:
    """Where each service's /healthz, /readyz and /metrics are."""
    host = settings.ops_host
    return (
        f"ops     /metrics, /healthz, /readyz: poller http://{host}:"
        f"{settings.poller_ops_port}, stream :{settings.stream_ops_port}, delivery "
        f":{settings.delivery_ops_port}, token service {settings.token_service_url}"
    )


def run_dev_up(
    settings: Settings, services: list[Service] | None = None, demo: bool = False
) -> int:
    """Run the stack until stopped; returns the process exit code."""
    stack = DevStack(settings)
    side_work: Callable[[], Coroutine[Any, Any, None]] | None = None
    with exclusive_lock(stack.data_dir / "dev-up.lock"):
        try:
            asyncio.run(stack.start_servers())
            if demo:
                from lockerlink.demo import Demo

                plan = Demo(settings, stack.data_dir)
                stack.extra_env.update(plan.env())
                stack.start_services(plan.sandbox_services())

                async def side() -> None:
                    await plan.connect_merchants(stack.say)
                    await plan.print_deliveries(stack.say)

                side_work = side
            stack.start_services(SERVICES if services is None else services)
            stack.say(
                f"status  http://{settings.status_page_host}:"
                f"{settings.status_page_port}/ (password: the admin credential)"
            )
            stack.say(_ops_line(settings))
            stack.say("ready   press Ctrl-C to stop")
            reason, clean = asyncio.run(_wait_for_stop(stack, side_work))
            stack.say(f"stopping ({reason})")
        finally:
            stack.stop()
        stack.say("stopped")
    return 0 if clean else 1
