"""Real `lockerlink` processes: several token services refresh once; operator CLI.

The processes use lockerlink's default Redis key prefix, so they get a Redis of
their own (an embedded Valkey) instead of the machine's shared one.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from click.testing import CliRunner

from lockerlink.cli import _add_component_commands, cli
from lockerlink.embedded import EmbeddedRedis, free_port, wait_for_port
from lockerlink.keys import KeySpace
from lockerlink.settings import Settings
from sandbox.clover import CloverSandbox
from tests.token_fixtures import pair_of
from token_service.lockers import LockerRegistry
from token_service.pair import TokenPair
from token_service.rotation_events import CallbackRotationPublisher
from token_service.tls import client_context, ensure_dev_certificate
from token_service.vault import Vault


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedRedis(
        "127.0.0.1", free_port(), tmp_path_factory.mktemp("valkey") / "data"
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@dataclass
class Env:
    variables: dict[str, str]
    settings: Settings
    sandbox: CloverSandbox
    redis: aioredis.Redis


@pytest.fixture
async def env(
    private_redis: str,
    clover_sandbox: CloverSandbox,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> AsyncIterator[Env]:
    assert clover_sandbox.base_url is not None
    variables = {
        "LOCKERLINK_REDIS_URL": private_redis,
        "LOCKERLINK_DATA_DIR": str(tmp_path / "data"),
        "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "LOCKERLINK_CLOVER_API_BASE_URL": clover_sandbox.base_url,
        "LOCKERLINK_CLOVER_AUTHORIZE_BASE_URL": clover_sandbox.base_url,
        "LOCKERLINK_CLOVER_TIMEOUT_S": "2",
        "LOCKERLINK_TOKEN_REFRESH_LEASE_S": "5",
    }
    settings = Settings(
        redis_url=private_redis,
        data_dir=tmp_path / "data",
        clover_api_base_url=clover_sandbox.base_url,
        clover_timeout_s=2,
        token_refresh_lease_s=5,
    )
    redis = aioredis.Redis.from_url(private_redis)
    await redis.flushdb()
    try:
        yield Env(variables, settings, clover_sandbox, redis)
    finally:
        await redis.aclose()


async def _vault(env: Env) -> Vault:
    async def ignore(_event: object) -> None:
        return None

    return Vault(
        env.settings, env.redis, KeySpace(), publisher=CallbackRotationPublisher(ignore)
    )


def _start_services(env: Env, count: int) -> list[tuple[int, subprocess.Popen[bytes]]]:
    started = []
    for _ in range(count):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "lockerlink", "token-service"],
            env={
                **os.environ,
                **env.variables,
                "LOCKERLINK_TOKEN_SERVICE_PORT": str(port),
            },
            stdout=subprocess.DEVNULL,
        )
        started.append((port, process))
        wait_for_port("127.0.0.1", port, 30, "token service")
    return started


async def test_several_token_service_processes_refresh_once(env: Env) -> None:
    vault = await _vault(env)
    merchant = env.sandbox.merchant_ids[0]
    await vault.connect(
        merchant, "store-a", pair_of(env.sandbox.connect_merchant(merchant))
    )
    current = await vault.get_access_token(merchant)
    credential = (
        await LockerRegistry(env.redis, KeySpace(), 60).enroll("store-a")
    ).credential
    await vault.close()
    ca = ensure_dev_certificate(env.settings.data_dir / "tls", "127.0.0.1").ca
    assert ca is not None
    services = _start_services(env, 2)
    try:
        connector = aiohttp.TCPConnector(ssl=client_context(ca))
        async with aiohttp.ClientSession(connector=connector) as session:

            async def report(port: int) -> str:
                async with session.post(
                    f"https://127.0.0.1:{port}/v1/token/rejected",
                    json={"fingerprint": current.fingerprint},
                    headers={"Authorization": f"Bearer {credential}"},
                ) as resp:
                    body = await resp.json()
                    assert resp.status == 200, body
                    return str(body["access_token"])

            tokens = await asyncio.gather(
                *(report(port) for port, _ in services for _ in range(8))
            )
    finally:
        for _, process in services:
            process.terminate()
        for _, process in services:
            assert process.wait(timeout=15) == 0

    assert len(set(tokens)) == 1 and tokens[0] != current.token
    calls = env.sandbox.calls
    assert calls.count("refresh", merchant_id=merchant) == 1
    assert calls.count("refresh", outcome="reused") == 0
    assert env.sandbox.tokens.merchant_of_access(tokens[0]) == merchant


def test_operator_commands_manage_lockers_merchants_and_keys(
    private_redis: str, tmp_path: Path
) -> None:
    sandbox = CloverSandbox()  # its tokens are issued in memory, no server needed
    env = {
        "LOCKERLINK_REDIS_URL": private_redis,
        "LOCKERLINK_DATA_DIR": str(tmp_path / "data"),
        "LOCKERLINK_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
    }
    runner = CliRunner()
    _add_component_commands()

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    enrolled = run("lockers", "enroll", "--store", "store-b")
    credential = enrolled.split("credential (shown once): ")[1].strip()
    locker_id = enrolled.split()[1]
    listed = run("lockers", "list")
    assert locker_id in listed and credential not in listed
    rotated = run("lockers", "rotate", locker_id)
    assert "credential (shown once): llk_" in rotated and credential not in rotated
    run("lockers", "revoke", locker_id)
    assert "revoked" in run("lockers", "list")

    link = run("merchants", "connect", "--store", "store-b")
    assert "code_challenge_method=S256" in link and "state=" in link

    merchant = sandbox.merchant_ids[0]
    settings = Settings(redis_url=private_redis, data_dir=tmp_path / "data")
    pair = pair_of(sandbox.connect_merchant(merchant))
    token = asyncio.run(_connect_direct(settings, merchant, pair))
    listing = run("merchants", "list")
    assert merchant in listing and "connected" in listing
    assert token not in listing

    assert "re-encrypted 1 pair(s)" in run("keys", "rotate", "--new-dev-key")
    assert asyncio.run(_connect_direct(settings, merchant, None)) == token


async def _connect_direct(
    settings: Settings, merchant: str, pair: TokenPair | None
) -> str:
    """Connect (or, without a pair, read) a merchant with a vault of our own."""

    async def ignore(_event: object) -> None:
        return None

    redis = aioredis.Redis.from_url(settings.redis_url)
    vault = Vault(
        settings, redis, KeySpace(), publisher=CallbackRotationPublisher(ignore)
    )
    try:
        if pair is not None:
            await vault.connect(merchant, "store-b", pair)
        return (await vault.get_access_token(merchant)).token
    finally:
        await vault.close()
        await redis.aclose()
