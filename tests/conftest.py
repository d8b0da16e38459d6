"""Real services for the tests: a Tansu broker and a Redis, shared per session.

Each test isolates itself with unique topic names and a Redis key prefix of its own.
With Docker and ``LOCKERLINK_TEST_CONTAINERS=1`` the same fixtures come from
testcontainers (Apache Kafka and Redis images) instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from lockerlink.embedded import EmbeddedBroker, EmbeddedRedis, free_port
from lockerlink.keys import KeySpace
from lockerlink.redis_store import redis_answers
from lockerlink.settings import Settings
from sandbox.locker import LockerSandbox
from tests.mail_inbox import smtp_inbox as smtp_inbox
from tests.sandboxes import clover_sandbox as clover_sandbox
from tests.sandboxes import clover_sandbox_factory as clover_sandbox_factory
from tests.token_fixtures import token_api as token_api
from tests.token_fixtures import vault_rig as vault_rig

MACHINE_REDIS = "redis://127.0.0.1:6379/0"


def _use_containers() -> bool:
    return os.environ.get("LOCKERLINK_TEST_CONTAINERS") == "1"


def _docker_missing_reason() -> str | None:
    if shutil.which("docker") is None:
        return "Docker is not installed on this machine"
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception as exc:  # the Docker client raises many unrelated types
        return f"Docker engine not reachable: {type(exc).__name__}"
    return None


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a real Kafka-compatible broker for this test session."""
    if _use_containers():
        reason = _docker_missing_reason()
        if reason:
            pytest.skip(reason)
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    broker = EmbeddedBroker("127.0.0.1", free_port(), log_path)
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis: the configured one, the machine's, or an embedded Valkey."""
    if _use_containers():
        reason = _docker_missing_reason()
        if reason:
            pytest.skip(reason)
        from testcontainers.redis import RedisContainer

        with RedisContainer() as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    configured = os.environ.get("LOCKERLINK_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    if asyncio.run(redis_answers(MACHINE_REDIS)):
        yield MACHINE_REDIS
        return
    server = EmbeddedRedis(
        "127.0.0.1", free_port(), tmp_path_factory.mktemp("valkey") / "data"
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def keyspace() -> KeySpace:
    """A Redis key prefix no other test uses."""
    return KeySpace(prefix=f"lltest-{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def redis(redis_url: str, keyspace: KeySpace) -> AsyncIterator[aioredis.Redis]:
    """A Redis client; every key under this test's prefix is deleted afterwards."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{keyspace.prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Makes names (topics, groups, stores) no other test uses."""
    run = uuid.uuid4().hex[:8]

    def make(stem: str) -> str:
        return f"{stem}-{run}-{uuid.uuid4().hex[:6]}"

    return make


@pytest.fixture
def settings(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at this session's broker and Redis, with a private data dir."""
    return Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        redis_url=redis_url,
        data_dir=tmp_path / "data",
    )


@pytest.fixture
async def locker_sandbox() -> AsyncIterator[Callable[..., Awaitable[LockerSandbox]]]:
    """Starts locker sandboxes on loopback (``await locker_sandbox(**options)``)."""
    started: list[LockerSandbox] = []

    async def start(**options: Any) -> LockerSandbox:
        server = LockerSandbox(**options)
        await server.start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            await server.stop()
